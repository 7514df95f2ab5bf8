// `buildyard history ls | inspect | logs | rm`: buildx's `docker buildx history` over the build
// records the builder keeps (Control.ListHistory/DeleteHistory; logs replay through Attach).
// Output follows buildx's: ls's columns and JSON lines, inspect's blocks (Go tabwriter layout)
// and JSON document, logs as a progress view on stderr.
import { basename, resolve as resolvePath } from 'node:path';
import type { Writable } from 'node:stream';
import { goTime } from '@buildyard/progress';
import type { HistoryRecord, ListHistoryResponse, DeleteHistoryResponse, SolveEvent } from '@buildyard/proto';
import { ClientError, ExitCode, usageError } from './ClientError.js';
import type { BuilderConnection } from './connectBuilder.js';
import { createRenderer, type RendererMode } from './ProgressRenderer.js';

/** What a history record calls the build's context: a URL or `-` as given, a directory as an absolute path (as buildx keeps it). */
export function historyContextName(context: string, cwd: string): string {
  if (context === '-' || /^[a-z][a-z0-9+.-]*:\/\//i.test(context) || /^git@/.test(context)) return context;
  return resolvePath(cwd, context);
}

/** buildx's BuildName: BUILDKIT_BUILD_NAME, else the context's base name (then a non-default Dockerfile's), then " (target)". */
export function historyName(r: HistoryRecord): string {
  if (r.buildArgs.BUILDKIT_BUILD_NAME) return r.buildArgs.BUILDKIT_BUILD_NAME;
  const remote = /^[a-z][a-z0-9+.-]*:\/\//i.test(r.context) || r.context.startsWith('git@');
  let name = remote ? r.context : r.context && r.context !== '-' ? basename(r.context) : '';
  const file = r.dockerfile && r.dockerfile !== '-' ? r.dockerfile.replace(/^\.\//, '') : '';
  // The record keeps the Dockerfile's path as its user wrote it (relative to where the build ran): its base name stands for it.
  if (!remote && file && basename(file) !== 'Dockerfile') name = name ? `${name}/${basename(file)}` : basename(file);
  if (r.target) name = name ? `${name} (${r.target})` : r.target;
  return name;
}

/** go-units' HumanDuration, as docker prints ages ("2 minutes", "About an hour"). */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

/** buildx's formatDuration: "4.2s" under a minute, else "3m 7s" (seconds padded to 2). */
export function historyDuration(ms: number): string {
  if (ms < 60_000) return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m ${String(Math.floor(ms / 1000) % 60).padStart(2)}s`;
}

const finished = (r: HistoryRecord) => r.status !== 'queued' && r.status !== 'running';

/** ls's STATUS: buildx tells only running, failed and completed builds apart. */
function lsStatus(r: HistoryRecord): string {
  if (!finished(r)) return 'Running';
  return r.status === 'succeeded' ? 'Completed' : 'Error';
}

function trimBeginning(s: string, n: number): string {
  return s.length <= n ? s : `..${s.slice(s.length - n + 2)}`;
}

/** Go's text/tabwriter with buildx's settings (minwidth 1, tabwidth 8, padding 1, padchar '\t'): cells padded with tabs to shared tab stops. */
export function tabwriter(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.slice(0, -1).forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length + 1); });
  const stops = widths.map((w) => Math.ceil(w / 8) * 8);
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell + '\t'.repeat(Math.ceil((stops[i] - cell.length) / 8)))).join(''));
}

export interface HistoryLsFormat {
  builder: string;
  format: string;
  noTrunc?: boolean;
  /** The builder's clock (ListHistoryResponse.now_ms), for running builds. */
  nowMs: number;
}

/**
 * buildx's full ref of a record: builder/node/id. A builder here is one node, named as buildx
 * names a builder's first; a builder given as an endpoint (tcp://host:port) names it host:port.
 */
export function historyRef(builder: string, buildId: string): string {
  const node = /^[a-z][a-z0-9+.-]*:\/\//i.test(builder) ? builder.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '') : `${builder}0`;
  return `${builder}/${node}/${buildId}`;
}

function lsDuration(r: HistoryRecord, nowMs: number): string {
  const end = r.finishedMs || nowMs;
  return historyDuration(end - r.createdMs) + (r.finishedMs ? '' : '+');
}

/** `history ls`: buildx's table (BUILD ID, NAME, STATUS, CREATED AT, DURATION), running builds first; `--format json`: one object per line. */
export function formatHistoryLs(records: readonly HistoryRecord[], o: HistoryLsFormat): string[] {
  const sorted = [...records].sort((a, b) => (finished(a) === finished(b) ? b.createdMs - a.createdMs : finished(a) ? 1 : -1));
  if (o.format === 'json') {
    // Go marshals a map with its keys sorted.
    return sorted.map((r) => JSON.stringify({
      cached_steps: r.stepsCached,
      ...(r.finishedMs ? { completed_at: goTime(new Date(r.finishedMs)) } : {}),
      completed_steps: r.stepsCompleted,
      created_at: goTime(new Date(r.createdMs)),
      name: historyName(r),
      ref: historyRef(o.builder, r.buildId),
      status: lsStatus(r),
      total_steps: r.stepsTotal,
    }));
  }
  if (o.format !== 'table') throw usageError(`history ls: unknown --format "${o.format.slice(0, 40)}": use table or json`);
  const rows = [['BUILD ID', 'NAME', 'STATUS', 'CREATED AT', 'DURATION']];
  for (const r of sorted) {
    const name = historyName(r);
    rows.push([r.buildId, o.noTrunc ? name : trimBeginning(name, 36), lsStatus(r), `${humanDuration(o.nowMs - r.createdMs)} ago`, lsDuration(r, o.nowMs)]);
  }
  return dockerTable(rows);
}

/** docker's table formatter: Go's tabwriter with minwidth 10, padding 3, spaces (the trailing padding dropped). */
function dockerTable(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 10, cell.length + 3); });
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]))).join('').trimEnd());
}

/** buildx's inspect status words. */
function inspectStatus(r: HistoryRecord): string {
  if (!finished(r)) return 'running';
  return r.status === 'succeeded' ? 'completed' : r.status === 'cancelled' ? 'canceled' : 'failed';
}

/** 2006-01-02 15:04:05 in the local time zone, as buildx's Started line. */
function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** `history inspect --format json`: buildx's inspectOutput fields that a record has, plus the images and pushed names. */
export function historyInspectJson(r: HistoryRecord, o: { builder: string; nowMs: number }): string {
  const end = r.finishedMs || o.nowMs;
  const doc: Record<string, unknown> = {
    ...(historyName(r) ? { Name: historyName(r) } : {}),
    Ref: historyRef(o.builder, r.buildId),
    ...(r.context ? { Context: r.context } : {}),
    ...(r.dockerfile ? { Dockerfile: r.dockerfile } : {}),
    ...(r.target ? { Target: r.target } : {}),
    ...(r.platforms.length ? { Platform: r.platforms } : {}),
    StartedAt: goTime(new Date(r.createdMs)),
    ...(r.finishedMs ? { CompletedAt: goTime(new Date(r.finishedMs)) } : {}),
    // time.Duration marshals as nanoseconds.
    Duration: (end - r.createdMs) * 1_000_000,
    Status: inspectStatus(r),
    ...(r.error ? { Error: { Message: r.error, ...(r.errorStep ? { Name: r.errorStep } : {}) } } : {}),
    NumCompletedSteps: r.stepsCompleted,
    NumTotalSteps: r.stepsTotal,
    NumCachedSteps: r.stepsCached,
    ...(Object.keys(r.buildArgs).length ? { BuildArgs: Object.entries(r.buildArgs).sort(([a], [b]) => a.localeCompare(b)).map(([Name, Value]) => ({ Name, Value })) } : {}),
    Config: { ...(r.network && r.network !== 'default' ? { Network: r.network } : {}), ...(r.platforms.length > 1 ? { MultiPlatform: true } : {}), ...(r.noCache ? { NoCache: true } : {}) },
    ...(r.digest ? { Digest: r.digest } : {}),
    ...(r.images.length ? { Images: r.images.map((i) => ({ Platform: i.platform, Digest: i.manifestDigest, ConfigDigest: i.configDigest })) } : {}),
    ...(r.pushed.length ? { Pushed: r.pushed } : {}),
  };
  return JSON.stringify(doc, null, 2);
}

/** `history inspect`: buildx's blocks (build, times and steps, config, build args), then the images, the error, the logs hint. */
export function formatHistoryInspect(r: HistoryRecord, o: { builder: string; nowMs: number; refGiven: boolean }): string[] {
  const out: string[] = [];
  const block = (rows: string[][]) => { out.push(...tabwriter(rows), ''); };
  const first: string[][] = [];
  if (historyName(r)) first.push(['Name:', historyName(r)]);
  if (!o.refGiven) first.push(['Ref:', historyRef(o.builder, r.buildId)]);
  if (r.context) first.push(['Context:', r.context]);
  if (r.dockerfile) first.push(['Dockerfile:', r.dockerfile]);
  if (r.target) first.push(['Target:', r.target]);
  if (r.platforms.length) first.push(['Platforms:', r.platforms.join(', ')]);
  block(first);
  const status = inspectStatus(r);
  const times: string[][] = [
    ['Started:', localTime(r.createdMs)],
    ['Duration:', `${historyDuration((r.finishedMs || o.nowMs) - r.createdMs)}${status === 'running' ? ' (running)' : ''}`],
  ];
  if (status === 'failed') times.push(['Error:', r.error]);
  if (status === 'canceled') times.push(['Status:', 'Canceled']);
  const pct = r.stepsTotal ? Math.round((r.stepsCached / r.stepsTotal) * 100) : 0;
  times.push(['Build Steps:', `${r.stepsCompleted}/${r.stepsTotal} (${pct}% cached)`]);
  block(times);
  const config: string[][] = [];
  if (r.network && r.network !== 'default') config.push(['Network:', r.network]);
  if (r.platforms.length > 1) config.push(['Multi-Platform:', 'true']);
  if (r.noCache) config.push(['No Cache:', 'true']);
  if (config.length) block(config);
  const args = Object.entries(r.buildArgs).sort(([a], [b]) => a.localeCompare(b));
  if (args.length) block([['BUILD ARG', 'VALUE'], ...args.map(([k, v]) => [k, v])]);
  if (r.digest || r.images.length) {
    out.push('Images:');
    block([['DIGEST', 'PLATFORM'], ...(r.digest && r.images.length !== 1 ? [[r.digest, 'index']] : []), ...r.images.map((i) => [i.manifestDigest, i.platform])]);
  }
  if (r.pushed.length) block([['PUSHED'], ...r.pushed.map((p) => [p])]);
  out.push(`Print build logs: buildyard history logs ${r.buildId}`);
  return out;
}

async function listHistory(conn: BuilderConnection, doing: string, req: { ref?: string; limit?: number; details?: boolean }): Promise<ListHistoryResponse> {
  return conn.unary<ListHistoryResponse>(doing, (md, opt, cb) => conn.control.listHistory({ ref: req.ref ?? '', limit: req.limit ?? 0, details: req.details ?? false, completedOnly: false }, md, opt, cb), 60_000);
}

/** The one record a ref names (the latest when none is given), with its steps read from its events. */
export async function historyRecord(conn: BuilderConnection, doing: string, ref: string | undefined): Promise<{ record: HistoryRecord; nowMs: number }> {
  const res = await listHistory(conn, doing, { ref: ref || '^0', details: true });
  const record = res.records[0];
  if (!record) throw new ClientError(`${doing}: the builder answered no record for ${ref || 'the latest build'}`, ExitCode.BuildFailed);
  return { record, nowMs: res.nowMs };
}

export async function historyLs(conn: BuilderConnection, o: { format: string; noTrunc?: boolean }): Promise<string[]> {
  if (o.format !== 'table' && o.format !== 'json') throw usageError(`history ls: unknown --format "${o.format.slice(0, 40)}": use table or json`);
  const res = await listHistory(conn, 'history ls', {});
  return formatHistoryLs(res.records, { builder: conn.builder.name, format: o.format, noTrunc: o.noTrunc, nowMs: res.nowMs });
}

export async function historyInspect(conn: BuilderConnection, ref: string | undefined, format: string): Promise<string[]> {
  if (format !== 'pretty' && format !== 'json') throw usageError(`history inspect: unknown --format "${format.slice(0, 40)}": use pretty or json`);
  const { record, nowMs } = await historyRecord(conn, 'history inspect', ref);
  if (format === 'json') return [historyInspectJson(record, { builder: conn.builder.name, nowMs })];
  return formatHistoryInspect(record, { builder: conn.builder.name, nowMs, refGiven: Boolean(ref) });
}

/** `history logs`: replays the build's events (following a running build to its end) through a progress renderer on `stream`. */
export async function historyLogs(conn: BuilderConnection, ref: string | undefined, o: { mode: RendererMode; stream: Writable & { columns?: number; rows?: number; isTTY?: boolean }; signal?: AbortSignal }): Promise<void> {
  const { record } = await historyRecord(conn, 'history logs', ref);
  if (!record.logsKept) throw new ClientError(`history logs: the events of build ${record.buildId} are no longer kept (the builder's history.retentionMs); its record is all that is left (buildyard history inspect ${record.buildId})`, ExitCode.BuildFailed);
  const renderer = await createRenderer({ mode: o.mode, stream: o.stream, color: false });
  const call = conn.control.attach({ buildId: record.buildId, fromStart: true, cancelOnLeave: false }, conn.metadata);
  const onAbort = () => call.cancel();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const ev of call as AsyncIterable<SolveEvent>) renderer.event(ev);
  } catch (err) {
    if (o.signal?.aborted) throw new ClientError('history logs: interrupted', ExitCode.Interrupted);
    throw conn.describeError(err, 'history logs');
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    renderer.end();
  }
}

/** `history rm`: removes the records refs name (or every finished one with --all); answers the ids removed. */
export async function historyRm(conn: BuilderConnection, refs: string[], all: boolean): Promise<string[]> {
  if (refs.length === 0 && !all) throw usageError('history rm: name at least one build (an id, a prefix of one, or ^N), or give --all');
  if (refs.length > 0 && all) throw usageError('history rm: give either --all or build refs, not both');
  const res = await conn.unary<DeleteHistoryResponse>('history rm', (md, opt, cb) => conn.control.deleteHistory({ refs, all }, md, opt, cb), 60_000);
  return res.deleted;
}
