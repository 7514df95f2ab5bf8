// Per-process scratch space for a step's temporary files and mounts (rw bind copies, secrets,
// pinned cache mounts, layer blobs being written): `<root>/<pid>-<start time>/`. A worker that
// is killed leaves its directory behind; the next one to start reclaims every directory whose
// process is gone, unmounting what is still mounted there first.
import { mkdir, readdir } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { removeTree } from './diskTree.js';
import { listMountPoints, unmount } from './mounts.js';
import { processStart } from './processStart.js';

const owned = new Map<string, Promise<string>>();

/** This process's scratch directory under `root` (created once). */
export function ownScratchDir(root: string): Promise<string> {
  const abs = resolve(root);
  let dir = owned.get(abs);
  if (!dir) {
    dir = (async () => {
      const path = join(abs, `${process.pid}-${(await processStart(process.pid)) ?? '0'}`);
      await mkdir(path, { recursive: true, mode: 0o700 });
      return path;
    })();
    owned.set(abs, dir);
  }
  return dir;
}

/** Removes the scratch directories of processes that no longer run; returns their names. */
export async function reclaimScratch(root: string): Promise<string[]> {
  const abs = resolve(root);
  let names: string[];
  try {
    names = await readdir(abs);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    // Only `<pid>-<start>` dirs are scratch dirs; anything else is not ours to remove.
    const m = /^(\d+)-(\d+)$/.exec(name);
    if (!m || (await processStart(Number(m[1]))) === m[2]) continue;
    const dir = join(abs, name);
    // Deepest first; a removal through a live mount would delete what it shows (a cache).
    const mounts = (await listMountPoints()).filter((m) => m.startsWith(dir + sep)).reverse();
    for (const m of mounts) await unmount(m);
    if ((await listMountPoints()).some((m) => m.startsWith(dir + sep))) continue;
    await removeTree(dir);
    removed.push(name);
  }
  return removed;
}
