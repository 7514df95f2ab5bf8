// Column tables for `builder ls/inspect`, `du` and `prune`, aligned like docker's tabwriter.
import type { CacheRecord, DiskUsageResponse, InfoResponse, PruneResponse, WorkerInfo } from '@buildyard/proto';
import { formatBytes } from './sizes.js';

/** Aligns rows into columns separated by at least 3 spaces (docker's tabwriter padding). */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length); });
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] + 3))).join('').trimEnd());
}

export function formatWorkers(workers: readonly WorkerInfo[], indent = ''): string[] {
  if (workers.length === 0) return [`${indent}(no workers registered)`];
  const rows = [['WORKER', 'NATIVE', 'EMULATED', 'RUNNING', 'CACHE', 'STATUS']];
  for (const w of workers) {
    rows.push([
      w.id, w.nativePlatforms.join(',') || '-', w.emulatedPlatforms.join(',') || '-',
      `${w.running}/${w.capacity}`, formatBytes(w.cacheBytes), w.draining ? 'draining' : 'ready',
    ]);
  }
  return table(rows).map((l) => indent + l);
}

export function formatInfo(info: InfoResponse): string[] {
  return [
    `Version:   ${info.version || '-'}`,
    `Tenant:    ${info.tenant || '-'}`,
    `Workers:   ${info.workers}`,
    `Platforms: ${[...info.nativePlatforms, ...info.emulatedPlatforms.map((p) => `${p}*`)].join(', ') || '-'}`,
  ];
}

function age(ms: number, now: number): string {
  if (!ms) return '';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.round(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.round(s / 3600)} hours ago`;
  return `${Math.round(s / 86400)} days ago`;
}

/** buildx du: ID / RECLAIMABLE / SIZE / LAST ACCESSED, then the totals. */
export function formatDiskUsage(du: DiskUsageResponse, now = Date.now()): string[] {
  const rows = [['ID', 'RECLAIMABLE', 'SIZE', 'LAST ACCESSED']];
  const recs = [...du.records].sort((a, b) => b.size - a.size);
  for (const r of recs) rows.push([r.id + (r.shared ? '*' : ''), String(!r.inUse), formatBytes(r.size), age(r.lastUsedMs, now)]);
  const out = du.records.length ? table(rows) : [];
  if (out.length) out.push('');
  out.push(...table([['Shared:', formatBytes(recs.filter((r) => r.shared).reduce((n, r) => n + r.size, 0))], ['Reclaimable:', formatBytes(du.reclaimableBytes)], ['Total:', formatBytes(du.totalBytes)]]));
  return out;
}

/**
 * buildx du --verbose: one block per record (the fields this builder keeps of BuildKit's:
 * ID, Description, Reclaimable, Shared, Size, Usage count, Last used), then the totals.
 */
export function formatDiskUsageVerbose(du: DiskUsageResponse, now = Date.now()): string[] {
  const out: string[] = [];
  const recs = [...du.records].sort((a, b) => b.size - a.size);
  for (const r of recs) {
    out.push(...table([
      ['ID:', r.id], ['Description:', r.description || '-'], ['Reclaimable:', String(!r.inUse)], ['Shared:', String(r.shared)],
      ['Size:', formatBytes(r.size)], ['Usage count:', String(r.usageCount)], ['Last used:', age(r.lastUsedMs, now) || '-'],
    ]), '');
  }
  const shared = recs.filter((r) => r.shared).reduce((n, r) => n + r.size, 0);
  out.push(...table([['Shared:', formatBytes(shared)], ['Private:', formatBytes(du.totalBytes - shared)], ['Reclaimable:', formatBytes(du.reclaimableBytes)], ['Total:', formatBytes(du.totalBytes)]]));
  return out;
}

export function formatPrune(res: PruneResponse): string[] {
  const rows: string[][] = [['ID', 'RECLAIMABLE', 'SIZE', 'LAST ACCESSED']];
  res.removed.forEach((r: CacheRecord) => rows.push([r.id, 'true', formatBytes(r.size), '']));
  const out = res.removed.length ? table(rows) : [];
  out.push(`Total:  ${formatBytes(res.reclaimedBytes)}`);
  return out;
}
