// Who owns what is under a frontend's export dir, so the next frontend to start there removes
// what a crashed one left (whole unpacked images) and never what a live one is sending. Each
// process unpacks under a directory of its own, named by its identity:
// `<exportDir>/<boot id>.<pid namespace>.<pid>.<start time>/`. Without a state dir the export
// dir is the shared dir, which other frontends use too, on other machines or in other
// containers, so a pid is judged only where it means something: the owner is gone when it ran
// on this boot of this kernel, in this pid namespace, and its pid now has another start time (or
// none), which a reused pid cannot fake. An owner this process cannot see (another machine, a
// container that was restarted, this machine before a reboot) is judged by the `alive` file it
// rewrites every minute while it runs: it is gone when that file is OWNER_STALE_MS older than
// this process's own, written on the same disk just before (so the disk's clock compares both).
import { mkdir, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { processStart } from '@buildyard/snapshot';

/** How often a process rewrites its `alive` file. */
export const OWNER_REFRESH_MS = 60_000;
/** An `alive` file this much older than one written now says its process is gone. */
export const OWNER_STALE_MS = 15 * 60_000;
const ALIVE = 'alive';

interface Owner { bootId: string; pidNs: string; pid: number; start: string }

const OWNER_NAME = /^([0-9a-f-]{36})\.(\d+)\.(\d+)\.(\d+)$/;

const ownerName = (o: Owner) => `${o.bootId}.${o.pidNs}.${o.pid}.${o.start}`;

function parseOwner(name: string): Owner | undefined {
  const m = OWNER_NAME.exec(name);
  return m ? { bootId: m[1]!, pidNs: m[2]!, pid: Number(m[3]), start: m[4]! } : undefined;
}

let self: Promise<Owner> | undefined;

/** This process: its kernel's boot, its pid namespace, its pid and start time (zeros where /proc does not say). */
function thisProcess(): Promise<Owner> {
  self ??= (async () => ({
    bootId: (await readFile('/proc/sys/kernel/random/boot_id', 'utf8').catch(() => '')).trim() || '00000000-0000-0000-0000-000000000000',
    pidNs: /\[(\d+)\]/.exec(await readlink('/proc/self/ns/pid').catch(() => ''))?.[1] ?? '0',
    pid: process.pid,
    start: (await processStart(process.pid)) ?? '0',
  }))();
  return self;
}

const owned = new Map<string, Promise<string>>();

/**
 * This process's directory under `base` (the export dir), made with its `alive` file at the first
 * call, which then starts rewriting that file every OWNER_REFRESH_MS for as long as the process runs.
 */
export async function ownExportDir(base: string): Promise<string> {
  const abs = resolve(base);
  let dir = owned.get(abs);
  if (!dir) {
    dir = (async () => {
      const path = join(abs, ownerName(await thisProcess()));
      await mkdir(path, { recursive: true, mode: 0o700 });
      await writeFile(join(path, ALIVE), `${process.pid}\n`);
      // A missed rewrite is retried at the next tick: only 15 in a row make the directory look abandoned.
      setInterval(() => void mkdir(path, { recursive: true, mode: 0o700 }).then(() => writeFile(join(path, ALIVE), `${process.pid}\n`)).catch(() => undefined), OWNER_REFRESH_MS).unref();
      return path;
    })();
    owned.set(abs, dir);
    dir.catch(() => owned.delete(abs)); // the next export tries again
  }
  const path = await dir;
  await mkdir(path, { recursive: true, mode: 0o700 }); // removed by hand while this process ran
  return path;
}

/** Whether the process that made `dir` (named `owner`) is gone; `now` is the export disk's clock. */
async function ownerGone(owner: Owner, me: Owner, dir: string, now: number): Promise<boolean> {
  if (!me.bootId.startsWith('00000000') && owner.bootId === me.bootId && owner.pidNs === me.pidNs) return (await processStart(owner.pid)) !== owner.start;
  // Made before its `alive` file if that is missing (a crash in between): the directory's own time.
  const alive = await stat(join(dir, ALIVE)).catch(() => stat(dir)).catch(() => undefined);
  return alive !== undefined && now - alive.mtimeMs > OWNER_STALE_MS;
}

/**
 * Removes the directories under `base` (the export dir) whose processes are gone, keeping this
 * process's and every live one's; returns their names. Anything not named as an owner is left alone.
 */
export async function reclaimExportDirs(base: string): Promise<string[]> {
  const abs = resolve(base);
  // Own first: a directory of this process is never taken for another's, and its fresh `alive`
  // file gives the time on this disk's clock that others' are compared with.
  const mine = await ownExportDir(abs);
  await writeFile(join(mine, ALIVE), `${process.pid}\n`);
  const now = (await stat(join(mine, ALIVE))).mtimeMs;
  const me = await thisProcess();
  const removed: string[] = [];
  for (const name of await readdir(abs)) {
    const owner = parseOwner(name);
    const dir = join(abs, name);
    if (!owner || dir === mine || !(await ownerGone(owner, me, dir, now))) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
