// What a worker keeps on its own disk besides the shared stores: materialised build contexts
// (one dir per context id, shared by the stages of the builds using it) and layer snapshots.
// Contexts are removed once no build that used them is still running; `du` figures are
// measured the way `du -sx -B1` counts (allocated blocks, hardlinks once, one filesystem).
import { lstat, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkerDiskPart } from '@buildyard/cache';

export interface WorkerDiskOptions {
  stateDir: string;
  /**
   * With a registry blob store, this worker's own copies of context files and manifests it
   * fetched (`<sharedDir>/contexts/content`): on its disk, so part of its contexts figure.
   * Unset with an fs blob store, where that directory is the machine's shared store.
   */
  contextCopies?: { dir: string; /** Copies younger than this stay on a prune (see trimLocalCopies). */ minAgeMs: number };
  /** True while the build may still run stages (its record is queued or running). */
  buildRunning(buildId: string): Promise<boolean>;
}

interface ContextUse {
  /** Stages running now with this context. */
  stages: number;
  /** Builds that used it on this worker and may still be running. */
  builds: Set<string>;
  ready?: Promise<string>;
}

/**
 * Disk use of a tree as `du -sx -B1` reports it; with `modifiedBefore` (epoch ms) only the
 * non-directory entries last modified before then.
 */
export async function diskBytes(path: string, modifiedBefore?: number): Promise<number> {
  const seen = new Set<bigint>();
  let total = 0;
  let rootDev: bigint | undefined;
  const walk = async (p: string): Promise<void> => {
    let st;
    try { st = await lstat(p, { bigint: true }); } catch { return; } // removed while we walk
    rootDev ??= st.dev;
    if (st.dev !== rootDev) return;
    const counted = modifiedBefore === undefined || (!st.isDirectory() && Number(st.mtimeMs) < modifiedBefore);
    if (counted && !seen.has(st.ino)) {
      seen.add(st.ino);
      total += Number(st.blocks) * 512;
    }
    if (!st.isDirectory()) return;
    let names: string[] = [];
    try { names = await readdir(p); } catch { return; }
    for (const name of names) await walk(join(p, name));
  };
  await walk(path);
  return total;
}

export class WorkerDisk {
  private readonly uses = new Map<string, ContextUse>();
  /** Context removals run one at a time; stages wait for a running one before using a dir. */
  private removing: Promise<unknown> = Promise.resolve();
  readonly contextsDir: string;

  constructor(private readonly opts: WorkerDiskOptions) {
    this.contextsDir = join(opts.stateDir, 'contexts');
  }

  /**
   * The materialised dir of `contextId` for a stage of `buildId`, written once by `materialize`
   * (into a temporary dir then renamed); call release() when the stage ends.
   */
  async acquireContext(contextId: string, buildId: string, materialize: (dir: string) => Promise<unknown>): Promise<{ dir: string; release(): void }> {
    let use = this.uses.get(contextId);
    if (!use) this.uses.set(contextId, (use = { stages: 0, builds: new Set() }));
    use.stages++;
    use.builds.add(buildId);
    let released = false;
    const release = () => { if (!released) { released = true; use!.stages--; } };
    try {
      // A removal that began before we counted ourselves in finishes first; it then resets `ready`.
      await this.removing.catch(() => undefined);
      if (!use.ready) {
        const dir = join(this.contextsDir, contextId.slice('sha256:'.length));
        const ready = (async () => {
          if (existsSync(dir)) return dir;
          const partial = `${dir}.partial-${process.pid}`;
          await rm(partial, { recursive: true, force: true });
          await mkdir(this.contextsDir, { recursive: true });
          await materialize(partial);
          await rename(partial, dir);
          return dir;
        })();
        use.ready = ready;
        ready.catch(() => { if (use!.ready === ready) use!.ready = undefined; });
      }
      return { dir: await use.ready, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Removes every materialised context no running stage uses and no running build used, and
   * leftovers of materialisations a previous process did not finish. Returns the bytes freed.
   */
  removeFinishedContexts(): Promise<{ removed: string[]; bytes: number }> {
    const run = this.removing.catch(() => undefined).then(() => this.removeFinishedNow());
    this.removing = run;
    return run;
  }

  private async removeFinishedNow(): Promise<{ removed: string[]; bytes: number }> {
    let names: string[];
    try { names = await readdir(this.contextsDir); } catch { return { removed: [], bytes: 0 }; }
    const out = { removed: [] as string[], bytes: 0 };
    for (const name of names) {
      const partial = /\.partial-(\d+)$/.exec(name);
      if (partial && Number(partial[1]) === process.pid) continue; // ours, being written
      const contextId = `sha256:${name}`;
      const use = partial ? undefined : this.uses.get(contextId);
      if (use && (use.stages > 0 || (await this.stillRunning(use)))) continue;
      // Checked again after the awaits above: a stage may have started with it meanwhile.
      if (use && use.stages > 0) continue;
      if (use) { use.ready = undefined; this.uses.delete(contextId); }
      const path = join(this.contextsDir, name);
      const bytes = await diskBytes(path);
      await rm(path, { recursive: true, force: true });
      out.removed.push(name);
      out.bytes += bytes;
    }
    return out;
  }

  private async stillRunning(use: ContextUse): Promise<boolean> {
    for (const buildId of [...use.builds]) {
      if (await this.opts.buildRunning(buildId).catch(() => true)) return true;
      use.builds.delete(buildId);
    }
    return false;
  }

  /** The worker's state, part by part. `idle`: snapshots are reclaimable only while no stage runs. */
  async measure(idle: boolean): Promise<WorkerDiskPart[]> {
    const [snapshots, contexts, cache] = await Promise.all([diskBytes(join(this.opts.stateDir, 'snapshots')), diskBytes(this.contextsDir), diskBytes(join(this.opts.stateDir, 'blobs'))]);
    let inUse = 0;
    for (const [id, use] of this.uses) if (use.stages > 0) inUse += await diskBytes(join(this.contextsDir, id.slice('sha256:'.length)));
    const copies = this.opts.contextCopies;
    // A GC trims copies only while no stage runs, and only those old enough.
    const [copyBytes, copiesReclaimable] = copies
      ? await Promise.all([diskBytes(copies.dir), idle ? diskBytes(copies.dir, Date.now() - copies.minAgeMs) : 0])
      : [0, 0];
    return [
      { kind: 'snapshots', bytes: snapshots, reclaimableBytes: idle ? snapshots : 0 },
      { kind: 'contexts', bytes: contexts + copyBytes, reclaimableBytes: Math.max(0, contexts - inUse) + copiesReclaimable },
      // Layers are fetched again from the blob store; no prune removes this local copy yet.
      { kind: 'cache', bytes: cache, reclaimableBytes: 0 },
    ];
  }
}
