// Peak memory of cluster processes. SupervisedProcess.child is the watchdog shell; the node
// process it runs is its child (read from /proc, skipping the watchdog's transient `sleep`s).
import { readFileSync } from 'node:fs';
import type { SupervisedProcess } from '@buildyard/testkit';

export function supervisedPid(p: SupervisedProcess): number {
  const sh = p.child.pid;
  if (!sh) throw new Error(`${p.name} has no pid; it did not start`);
  const children = readFileSync(`/proc/${sh}/task/${sh}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  const node = children.find((pid) => {
    try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node'; } catch { return false; }
  });
  if (!node) throw new Error(`${p.name}: no node process under watchdog ${sh}; it may have exited`);
  return node;
}

/** VmHWM (peak resident set) and VmRSS of a process, in bytes. */
export function memoryOf(pid: number): { peak: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => {
    const m = status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { peak: kb('VmHWM'), rss: kb('VmRSS') };
}
