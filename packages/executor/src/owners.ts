// Which state dir each executor's owner tag (the prefix of its namespaces, nftables tables and
// cgroups) belongs to. A worker reclaims its own leftovers when it starts again on its state
// dir; this record lets it also reclaim those of executors whose state dir is gone (a worker
// killed and never started again there, as in test clusters that are torn down). Kept under
// /run, which a reboot clears together with the namespaces and cgroups themselves.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const registry = '/run/buildyard/executors';

export function registerOwner(owner: string, stateDir: string): void {
  try {
    mkdirSync(registry, { recursive: true });
    writeFileSync(join(registry, owner), stateDir);
  } catch {
    // Not root or no /run: the executor still reclaims its own leftovers on its state dir.
  }
}

/** Owners whose state dir no longer exists. */
export function orphanOwners(): string[] {
  let names: string[] = [];
  try { names = readdirSync(registry); } catch { return []; }
  return names.filter((owner) => {
    try { return !existsSync(readFileSync(join(registry, owner), 'utf8')); } catch { return false; }
  });
}

export function forgetOwner(owner: string): void {
  rmSync(join(registry, owner), { force: true });
}
