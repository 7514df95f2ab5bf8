// The rlimits of a RUN step's process. Docker's default is 1048576 open files and nothing else
// (runc keeps the worker's own limits); a build's `--ulimit` list replaces that, as BuildKit's
// executor does (Process.Rlimits = the list). A build may ask for no more than the worker
// process itself has: a limit above it would hand the step what the worker was denied
// (e.g. rtprio, which lets a process take real-time priority without CAP_SYS_NICE).
import { readFileSync } from 'node:fs';
import type { RuntimeSpec } from './runtimeSpec.js';

export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

type Rlimit = RuntimeSpec['process']['rlimits'][number];

// /proc/self/limits' row names for go-units' ulimit names.
const PROC_ROWS: Record<string, string> = {
  core: 'Max core file size', cpu: 'Max cpu time', data: 'Max data size', fsize: 'Max file size',
  locks: 'Max file locks', memlock: 'Max locked memory', msgqueue: 'Max msgqueue size',
  nice: 'Max nice priority', nofile: 'Max open files', nproc: 'Max processes', rss: 'Max resident set',
  rtprio: 'Max realtime priority', rttime: 'Max realtime timeout', sigpending: 'Max pending signals',
  stack: 'Max stack size',
};

/** RLIM_INFINITY as runc reads it (a uint64 of all ones; JSON numbers above 2^53 round to it). */
const INFINITY = 2 ** 64 - 1;

export class UlimitError extends Error {}

/** The worker's own hard limits by go-units name (Infinity: unlimited); empty off Linux. */
function ownHardLimits(): Map<string, number> {
  const limits = new Map<string, number>();
  let text = '';
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return limits;
  }
  for (const [name, row] of Object.entries(PROC_ROWS)) {
    const hard = new RegExp(`^${row}\\s+\\S+\\s+(\\S+)`, 'm').exec(text)?.[1];
    if (hard !== undefined) limits.set(name, hard === 'unlimited' ? Infinity : Number(hard));
  }
  return limits;
}

function hasCapSysResource(): boolean {
  try {
    const capEff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'));
    return (capEff & (1n << 24n)) !== 0n;
  } catch {
    return false;
  }
}

let cachedNofile: number | undefined;
/**
 * Docker's 1048576 open files; raising above our own hard limit needs CAP_SYS_RESOURCE, which
 * sandboxed workers may lack, so clamp to what runc can actually set.
 */
export function defaultNofile(): number {
  if (cachedNofile !== undefined) return cachedNofile;
  const wanted = 1048576;
  const hard = ownHardLimits().get('nofile');
  cachedNofile = !hasCapSysResource() && hard !== undefined && hard < wanted ? hard : wanted;
  return cachedNofile;
}

/** The step's rlimits: Docker's default, or the build's list checked against the worker's own. */
export function stepRlimits(ulimits: Ulimit[] | undefined): Rlimit[] {
  if (!ulimits?.length) return [{ type: 'RLIMIT_NOFILE', hard: defaultNofile(), soft: defaultNofile() }];
  const own = ownHardLimits();
  return ulimits.map((u) => {
    const ceiling = Math.max(own.get(u.name) ?? Infinity, u.name === 'nofile' ? defaultNofile() : 0);
    const value = (n: number) => (n < 0 ? Infinity : n);
    if (value(u.hard) > ceiling || value(u.soft) > ceiling) {
      throw new UlimitError(`--ulimit ${u.name}=${u.soft}:${u.hard} is above this worker's own limit (${ceiling === Infinity ? 'unlimited' : ceiling}); ask for at most that`);
    }
    const spec = (n: number) => (value(n) === Infinity ? INFINITY : n);
    return { type: `RLIMIT_${u.name.toUpperCase()}`, hard: spec(u.hard), soft: spec(u.soft) };
  });
}
