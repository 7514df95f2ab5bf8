// What a worker keeps on its own disk besides the shared stores: materialised build contexts
// and layer snapshots (and, with a registry blob store, its local copies of layers).
//
// Contexts live at `contexts/<tenant>/<lineage>/<hex of the context id>`: one tree per tenant
// and context id, shared by the stages of that tenant's builds using it. A lineage is a chain
// of trees each materialised from the one before (the same directory synced again by the same
// client, as BuildKit's shared key names it): when a build ends its tree is kept if it is the
// newest of its lineage, so the next build of that directory starts from it (`cp -al`, then
// only the differing entries) instead of writing every file again. Older trees of the lineage
// go as soon as no running build uses them. A tree is only ever the base of another tree of
// the same tenant: the lineage dirs sit under the tenant's dir, and materialisation looks at
// siblings only. Kept trees count in the worker's disk figure; the GC deletes them oldest
// first when the worker is over its size, and `prune --all` deletes them all.
//
// `du` figures are measured the way `du -sx -B1` counts (allocated blocks, hardlinks once, one
// filesystem).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { diskUsage, removeTree as removeDirTree } from '@buildyard/snapshot';
import { CACHE_MOUNTS_DIR, cacheMountTenant, forgetCacheMountTenant, isCacheMountRecord } from '@buildyard/solver';
import type { WorkerDiskPart } from '@buildyard/cache';

export interface WorkerDiskOptions {
  stateDir: string;
  /**
   * With a registry blob store, this worker's own copies of context files and manifests it
   * fetched (`<sharedDir>/contexts/content`): on its disk, so part of its contexts figure.
   * Unset with an fs blob store, where that directory is the machine's shared store.
   */
  contextCopies?: { dir: string; /** Copies younger than this stay on a prune (see trimLocalCopies). */ minAgeMs: number };
  /**
   * With a registry blob store, the worker's local copies of layers (`<stateDir>/blobs`): the
   * remote keeps serving them, so a GC may evict them. Unset with an fs blob store (the shared
   * store is the frontend's GC's business).
   */
  layerCopies?: LayerCopies;
  /** True while the build may still run stages (its record is queued or running). */
  buildRunning(buildId: string): Promise<boolean>;
  /**
   * The entry paths of a stored context (which lineage a new context continues): the store's
   * index of its manifest, made once per manifest and used again to update the tree.
   */
  contextPaths(contextId: string): Promise<ReadonlySet<string> | ReadonlyMap<string, unknown>>;
}

export interface LayerCopies {
  list(): AsyncIterable<{ digest: string; size: number; mtime: Date }>;
  /** Removes the local copy only. */
  evict(digest: string): Promise<boolean>;
}

interface Tree {
  tenantDir: string;
  /** Set when the tree is placed (existing trees: from disk). */
  lineage?: string;
  hex: string;
  /** Stages running now with this tree. */
  stages: number;
  /** Builds that used it on this worker and may still be running. */
  builds: Set<string>;
  ready?: Promise<string>;
  /** The tree is whole on disk. */
  done: boolean;
  /** When a stage last asked for it (its materialisation time for trees found on disk). */
  lastUsed: number;
  /** `du` of the tree alone, once measured: a whole tree never changes. */
  bytes?: number;
}

const HEX_ID = /^[a-f0-9]{64}$/;
const TENANT_DIR = /^[a-f0-9]{32}$/;
const LINEAGE_DIR = /^[a-f0-9]{16}$/;
/** Lineages of a tenant compared with a new context (each costs its manifest): the most recent. */
const LINEAGE_CANDIDATES = 8;

/** The tenant's directory name: fixed length and no path characters, whatever the tenant name. */
function tenantDir(tenant: string): string {
  return createHash('sha256').update(tenant).digest('hex').slice(0, 32);
}

/**
 * Disk use of a tree as `du -sx -B1` reports it; with `modifiedBefore` (epoch ms) only the
 * non-directory entries last modified before then. Measured by du and find (see the executor's
 * diskUsage): the snapshots measured include running steps' upper directories.
 */
export function diskBytes(path: string, modifiedBefore?: number): Promise<number> {
  return diskUsage(path, { modifiedBefore });
}

export class WorkerDisk {
  /** By `<tenantDir>/<hex>`. */
  private readonly trees = new Map<string, Tree>();
  /** Lineages (`<tenantDir>/<lineage>`) with a materialisation running: their trees may be its base. */
  private readonly materializing = new Map<string, number>();
  /** When a running stage last used a layer copy (by digest); older uses are read from the file. */
  private readonly layerUse = new Map<string, number>();
  private loaded?: Promise<void>;
  /** Removals run one at a time; stages wait for a running one before using a dir. */
  private removing: Promise<unknown> = Promise.resolve();
  readonly contextsDir: string;

  constructor(private readonly opts: WorkerDiskOptions) {
    this.contextsDir = join(opts.stateDir, 'contexts');
  }

  private path(t: Tree): string {
    return join(this.contextsDir, t.tenantDir, t.lineage!, t.hex);
  }

  /** The trees a previous process left (kept trees survive a restart). */
  private load(): Promise<void> {
    this.loaded ??= (async () => {
      for (const td of await readdir(this.contextsDir).catch(() => [] as string[])) {
        if (!TENANT_DIR.test(td)) continue;
        for (const lineage of await readdir(join(this.contextsDir, td)).catch(() => [] as string[])) {
          if (!LINEAGE_DIR.test(lineage)) continue;
          for (const hex of await readdir(join(this.contextsDir, td, lineage)).catch(() => [] as string[])) {
            if (!HEX_ID.test(hex) || this.trees.has(`${td}/${hex}`)) continue;
            const st = await stat(join(this.contextsDir, td, lineage, hex)).catch(() => undefined);
            if (!st?.isDirectory()) continue;
            this.trees.set(`${td}/${hex}`, { tenantDir: td, lineage, hex, stages: 0, builds: new Set(), done: true, lastUsed: st.ctimeMs });
          }
        }
      }
    })();
    return this.loaded;
  }

  /**
   * The materialised dir of `contextId` for a stage of `buildId` of `tenant`, written once by
   * `materialize` (into a temporary dir beside the trees it may start from, then renamed); call
   * release() when the stage ends. When the newest tree of the lineage is no longer used, it is
   * handed over: renamed to the temporary dir, and `materialize` gets its context id to update
   * it in place (BuildKit's DiffCopy into the copy it kept), saving the link of every file.
   */
  async acquireContext(tenant: string, contextId: string, buildId: string, materialize: (dir: string, updateFrom?: string) => Promise<unknown>): Promise<{ dir: string; release(): void }> {
    await this.load();
    const key = `${tenantDir(tenant)}/${contextId.slice('sha256:'.length)}`;
    let t = this.enter(key, buildId);
    let released = false;
    const release = () => { if (!released) { released = true; t.stages--; } };
    try {
      // A removal that began before we counted ourselves in finishes first; it may have dropped
      // the entry we counted in, then we count in the current one.
      await this.removing.catch(() => undefined);
      if (this.trees.get(key) !== t) {
        t.stages--;
        t = this.enter(key, buildId);
      }
      if (!t.ready) {
        const tree = t;
        const ready = (async () => {
          if (tree.done && tree.lineage && existsSync(this.path(tree))) return this.path(tree);
          tree.done = false;
          tree.lineage ??= await this.chooseLineage(tree, contextId);
          const lineageKey = `${tree.tenantDir}/${tree.lineage}`;
          this.materializing.set(lineageKey, (this.materializing.get(lineageKey) ?? 0) + 1);
          try {
            const dir = this.path(tree);
            const partial = `${dir}.partial-${process.pid}`;
            await rm(partial, { recursive: true, force: true });
            await mkdir(join(this.contextsDir, lineageKey), { recursive: true });
            const base = await this.handOver(tree, partial);
            try {
              await materialize(partial, base);
              await rename(partial, dir);
            } catch (err) {
              await rm(partial, { recursive: true, force: true });
              throw err;
            }
            tree.done = true;
            return dir;
          } finally {
            const n = this.materializing.get(lineageKey)! - 1;
            if (n > 0) this.materializing.set(lineageKey, n);
            else this.materializing.delete(lineageKey);
          }
        })();
        tree.ready = ready;
        ready.catch(() => { if (tree.ready === ready) tree.ready = undefined; });
      }
      return { dir: await t.ready!, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  /**
   * Moves the lineage's newest tree to `partial` when nothing uses it any more (it would be
   * removed once the new tree is whole anyway); returns its context id, or undefined when it
   * stays (then the new tree links from it). The caller counts its lineage as materialising,
   * so no removal touches the lineage meanwhile.
   */
  private async handOver(tree: Tree, partial: string): Promise<string | undefined> {
    let base: Tree | undefined;
    for (const t of this.trees.values()) {
      if (t !== tree && t.done && t.tenantDir === tree.tenantDir && t.lineage === tree.lineage && (!base || base.lastUsed < t.lastUsed)) base = t;
    }
    if (!base || !this.unused(base) || (await this.stillRunning(base)) || !this.unused(base)) return undefined;
    const from = this.path(base);
    // From here on, a stage asking for the base's context materialises it anew.
    this.trees.delete(`${base.tenantDir}/${base.hex}`);
    base.ready = undefined;
    base.done = false;
    try {
      await rename(from, partial);
    } catch {
      await rm(from, { recursive: true, force: true });
      return undefined;
    }
    return `sha256:${base.hex}`;
  }

  private enter(key: string, buildId: string): Tree {
    let t = this.trees.get(key);
    if (!t) {
      const [td, hex] = key.split('/') as [string, string];
      this.trees.set(key, (t = { tenantDir: td, hex, stages: 0, builds: new Set(), done: false, lastUsed: 0 }));
    }
    t.stages++;
    t.builds.add(buildId);
    t.lastUsed = Date.now();
    return t;
  }

  /**
   * The lineage a new tree continues: of the tenant's most recent lineages, the one whose
   * newest tree shares the most paths with the new context, if they share at least half of
   * the paths of each (else linking it and deleting most of it would cost more than writing
   * the context afresh, or a small named context would take the place of a big one);
   * otherwise a new lineage. Only this tenant's trees are candidates.
   */
  private async chooseLineage(tree: Tree, contextId: string): Promise<string> {
    const newest = new Map<string, Tree>();
    for (const t of this.trees.values()) {
      if (t === tree || t.tenantDir !== tree.tenantDir || !t.done || !t.lineage) continue;
      const seen = newest.get(t.lineage);
      if (!seen || seen.lastUsed < t.lastUsed) newest.set(t.lineage, t);
    }
    const candidates = [...newest.values()].sort((a, b) => b.lastUsed - a.lastUsed).slice(0, LINEAGE_CANDIDATES);
    const fresh = () => randomBytes(8).toString('hex');
    if (candidates.length === 0) return fresh();
    const wanted = await this.opts.contextPaths(contextId);
    let best: { lineage: string; shared: number } | undefined;
    for (const c of candidates) {
      let shared = 0;
      let size = 0;
      try {
        const paths = await this.opts.contextPaths(`sha256:${c.hex}`);
        size = paths.size;
        for (const p of paths.keys()) if (wanted.has(p)) shared++;
      } catch {
        continue; // its manifest is gone from the store: it cannot be a base anyway
      }
      if (shared * 2 < Math.max(size, wanted.size) || shared === 0) continue;
      if (!best || shared > best.shared) best = { lineage: c.lineage!, shared };
    }
    return best ? best.lineage : fresh();
  }

  /**
   * Removes every materialised context no running stage uses and no running build used,
   * except the newest tree of each lineage (kept as the base of the next build), and leftovers
   * of materialisations a previous process did not finish. Returns the bytes freed.
   */
  removeFinishedContexts(): Promise<{ removed: string[]; bytes: number }> {
    return this.serialized(() => this.removeFinishedNow());
  }

  /**
   * Removes kept trees, least recently used first, until the contexts take at most what
   * `keepBytes` answers (0: every kept tree). Trees a running build uses stay.
   */
  trimKeptContexts(keepBytes: () => Promise<number>): Promise<{ removed: string[]; bytes: number }> {
    return this.serialized(async () => {
      await this.load();
      const out = { removed: [] as string[], bytes: 0 };
      // The budget costs a walk of the other parts: only worth it with a tree to remove.
      if (![...this.trees.values()].some((t) => this.idleTree(t))) return out;
      const budget = await keepBytes();
      let total = 0;
      for (const t of this.trees.values()) if (t.done) total += await this.treeBytes(t);
      const kept = [...this.trees.values()].filter((t) => this.idleTree(t)).sort((a, b) => a.lastUsed - b.lastUsed);
      for (const t of kept) {
        if (total <= budget) break;
        if (!this.idleTree(t) || (await this.stillRunning(t)) || !this.idleTree(t)) continue;
        const bytes = await this.removeTree(t);
        total -= t.bytes ?? bytes;
        out.removed.push(t.hex);
        out.bytes += bytes;
      }
      return out;
    });
  }

  /** Bytes of the materialised trees (each measured once): what the GC budgets for contexts. */
  async contextsBytes(): Promise<number> {
    await this.load();
    let total = 0;
    for (const t of [...this.trees.values()]) if (t.done) total += await this.treeBytes(t);
    return total;
  }

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.removing.catch(() => undefined).then(fn);
    this.removing = run;
    return run;
  }

  /** Whole, unused now, and not a possible base of a materialisation running in its lineage. */
  private idleTree(t: Tree): boolean {
    return this.unused(t) && !this.materializing.has(`${t.tenantDir}/${t.lineage}`);
  }

  /** Whole, still the tree of its context, and no stage uses it now. */
  private unused(t: Tree): boolean {
    return t.done && t.stages === 0 && this.trees.get(`${t.tenantDir}/${t.hex}`) === t;
  }

  private async treeBytes(t: Tree): Promise<number> {
    t.bytes ??= await diskBytes(this.path(t));
    return t.bytes;
  }

  private async removeTree(t: Tree): Promise<number> {
    t.ready = undefined;
    t.done = false;
    this.trees.delete(`${t.tenantDir}/${t.hex}`);
    const lineageDir = join(this.contextsDir, t.tenantDir, t.lineage!);
    const bytes = await this.treeBytes(t);
    await rm(this.path(t), { recursive: true, force: true });
    // Empty lineage and tenant dirs go too (rmdir fails on a non-empty one, as wanted).
    await rmdir(lineageDir).then(() => rmdir(join(this.contextsDir, t.tenantDir))).catch(() => undefined);
    return bytes;
  }

  private async removeFinishedNow(): Promise<{ removed: string[]; bytes: number }> {
    await this.load();
    const out = { removed: [] as string[], bytes: 0 };
    // Leftovers: partial trees of earlier processes, and anything not in this layout.
    for (const name of await readdir(this.contextsDir).catch(() => [] as string[])) {
      const top = join(this.contextsDir, name);
      if (!TENANT_DIR.test(name)) {
        out.bytes += await diskBytes(top);
        await rm(top, { recursive: true, force: true });
        out.removed.push(name);
        continue;
      }
      for (const lineage of await readdir(top).catch(() => [] as string[])) {
        const dir = join(top, lineage);
        const names = LINEAGE_DIR.test(lineage) ? await readdir(dir).catch(() => [] as string[]) : [lineage];
        for (const n of names) {
          const path = LINEAGE_DIR.test(lineage) ? join(dir, n) : dir;
          const partial = /\.partial-(\d+)$/.exec(n);
          if (partial ? Number(partial[1]) === process.pid : (HEX_ID.test(n) && LINEAGE_DIR.test(lineage))) continue;
          out.bytes += await diskBytes(path);
          await rm(path, { recursive: true, force: true });
          out.removed.push(n);
        }
      }
    }
    // The newest whole tree of each lineage, used or not: the one the next build starts from.
    const newest = new Map<string, Tree>();
    for (const t of this.trees.values()) {
      if (!t.done) continue;
      const lk = `${t.tenantDir}/${t.lineage}`;
      const seen = newest.get(lk);
      if (!seen || seen.lastUsed < t.lastUsed) newest.set(lk, t);
    }
    for (const t of [...this.trees.values()]) {
      if (!this.idleTree(t) || newest.get(`${t.tenantDir}/${t.lineage}`) === t) continue;
      if (await this.stillRunning(t)) continue;
      // Checked again after the await above: a stage may have started with it meanwhile.
      if (!this.idleTree(t)) continue;
      out.bytes += await this.removeTree(t);
      out.removed.push(t.hex);
    }
    return out;
  }

  private async stillRunning(t: Tree): Promise<boolean> {
    for (const buildId of [...t.builds]) {
      if (await this.opts.buildRunning(buildId).catch(() => true)) return true;
      t.builds.delete(buildId);
    }
    return false;
  }

  /** A stage used these layers: the GC evicts least recently used copies first. */
  usedLayers(digests: Iterable<string>): void {
    const now = Date.now();
    for (const d of digests) this.layerUse.set(d, now);
  }

  /**
   * Evicts local layer copies, least recently used first, until at most `keepBytes` remain.
   * Call only while no stage runs (a running stage may be reading any of them).
   */
  async trimLayerCopies(keepBytes: number): Promise<{ freedBytes: number; keptBytes: number }> {
    const copies = this.opts.layerCopies;
    if (!copies) return { freedBytes: 0, keptBytes: 0 };
    const all: { digest: string; size: number; used: number }[] = [];
    for await (const b of copies.list()) all.push({ digest: b.digest, size: b.size, used: this.layerUse.get(b.digest) ?? b.mtime.getTime() });
    all.sort((a, b) => a.used - b.used);
    let kept = all.reduce((n, b) => n + b.size, 0);
    let freed = 0;
    for (const b of all) {
      if (kept <= keepBytes) break;
      if (await copies.evict(b.digest)) {
        kept -= b.size;
        freed += b.size;
        this.layerUse.delete(b.digest);
      }
    }
    return { freedBytes: freed, keptBytes: kept };
  }

  /**
   * Removes RUN cache-mount directories (`<stateDir>/cache-mounts`, one per tenant and id), least
   * recently used first (RunMounts dates each when it mounts it), until at most `keepBytes`
   * remain; 0 removes them all (`prune --all`). With `tenant` (that tenant's prune), only the
   * directories recorded as its own count and go (see the solver's cacheMounts.ts). Call only
   * while no stage runs.
   */
  async trimCacheMounts(keepBytes: number, options: { tenant?: string } = {}): Promise<{ freedBytes: number; keptBytes: number }> {
    const root = join(this.opts.stateDir, CACHE_MOUNTS_DIR);
    const all: { path: string; bytes: number; used: number }[] = [];
    for (const name of await readdir(root).catch(() => [] as string[])) {
      const path = join(root, name);
      if (isCacheMountRecord(name) || (options.tenant !== undefined && (await cacheMountTenant(path)) !== options.tenant)) continue;
      const st = await stat(path).catch(() => null);
      if (st) all.push({ path, bytes: await diskBytes(path), used: st.mtimeMs });
    }
    all.sort((a, b) => a.used - b.used);
    let kept = all.reduce((n, m) => n + m.bytes, 0);
    let freed = 0;
    for (const m of all) {
      if (kept <= keepBytes) break;
      await removeDirTree(m.path);
      await forgetCacheMountTenant(m.path);
      kept -= m.bytes;
      freed += m.bytes;
    }
    return { freedBytes: freed, keptBytes: kept };
  }

  /** The worker's state, part by part. `idle`: snapshots and layer copies are reclaimable only while no stage runs. */
  async measure(idle: boolean): Promise<WorkerDiskPart[]> {
    await this.load();
    const [snapshots, contexts, cache, cacheMounts] = await Promise.all(['snapshots', 'contexts', 'blobs', 'cache-mounts'].map((d) => diskBytes(join(this.opts.stateDir, d))));
    let inUse = 0;
    for (const t of [...this.trees.values()]) if (t.stages > 0 && t.lineage) inUse += await diskBytes(this.path(t));
    const copies = this.opts.contextCopies;
    // A GC trims copies only while no stage runs, and only those old enough.
    const [copyBytes, copiesReclaimable] = copies
      ? await Promise.all([diskBytes(copies.dir), idle ? diskBytes(copies.dir, Date.now() - copies.minAgeMs) : 0])
      : [0, 0];
    return [
      { kind: 'snapshots', bytes: snapshots, reclaimableBytes: idle ? snapshots : 0 },
      // Kept trees are reclaimable: a prune deletes them (the next build then writes its context afresh).
      { kind: 'contexts', bytes: contexts + copyBytes, reclaimableBytes: Math.max(0, contexts - inUse) + copiesReclaimable },
      // Local layer copies: evicted by a GC while idle (the remote store keeps serving them).
      { kind: 'cache', bytes: cache, reclaimableBytes: idle && this.opts.layerCopies ? cache : 0 },
      // RUN cache mounts: removed by a GC (least recently used first) or a prune while idle.
      { kind: 'cachemounts', bytes: cacheMounts, reclaimableBytes: idle ? cacheMounts : 0 },
    ];
  }
}
