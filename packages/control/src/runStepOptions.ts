// What the build gives every RUN step (BuildKit's dockerui ExtraHosts, ShmSize, Ulimits): extra
// /etc/hosts lines, the /dev/shm size and the rlimits, planned into each RUN so they are part of
// its cache key. Read from the request of either front door; bad values fail in one line.
import { isIP } from 'node:net';
import { parseUlimit, type PlanOptions } from '@buildyard/dockerfile';
import type { SolveRequest } from '@buildyard/proto';

export type RunStepOptions = Required<Pick<PlanOptions, 'extraHosts' | 'shmSize' | 'ulimits'>>;

export function parseRunStepOptions(req: Pick<SolveRequest, 'addHosts' | 'shmSize' | 'ulimits'>): RunStepOptions {
  if (!Number.isSafeInteger(req.shmSize) || req.shmSize < 0) throw new Error(`invalid shm size ${req.shmSize}: give a number of bytes, 0 for the default 64MB`);
  return { extraHosts: parseAddHosts(req.addHosts), shmSize: req.shmSize, ulimits: req.ulimits.map((u) => parseUlimit(u.slice(0, 200))) };
}

/** --add-host entries, `name:ip` (docker build) or `name=ip` (BuildKit's add-hosts attribute);
 *  throws a one-line Error naming a bad one. */
export function parseAddHosts(entries: readonly string[]): { host: string; ip: string }[] {
  return entries.map((entry) => {
    const sep = /[:=]/.exec(entry)?.index ?? -1;
    const host = entry.slice(0, sep);
    const ip = entry.slice(sep + 1);
    if (sep <= 0 || !/^[A-Za-z0-9]([A-Za-z0-9._-]{0,252})$/.test(host) || isIP(ip) === 0) {
      throw new Error(`invalid --add-host ${JSON.stringify(entry.slice(0, 100))}: use name:ip, e.g. cache.internal:10.0.0.5`);
    }
    return { host, ip };
  });
}
