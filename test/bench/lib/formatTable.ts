import type { Measurement } from './Measurement.js';

function num(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  if (n !== 0 && Math.abs(n) < 0.01) return n.toPrecision(2);
  return n.toFixed(n === 0 ? 0 : 3).replace(/\.?0+$/, '') || '0';
}

/** A plain-text (and valid Markdown) table of the measurements. */
export function formatTable(rows: readonly Measurement[]): string {
  const header = ['benchmark', 'metric', 'unit', 'buildyard', 'peer', 'peer value', 'ratio', 'target', 'met'];
  const cell = (s: string) => s.replace(/\|/g, '\\|'); // keep the Markdown table intact
  const body = rows.map((r) => [
    r.benchmark, cell(r.metric), r.unit, num(r.buildyard), cell(r.peerName ?? '-'), num(r.peer),
    r.ratio === undefined ? '-' : `${num(r.ratio)}x`, r.target ?? '-', r.met === undefined ? '-' : r.met ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}
