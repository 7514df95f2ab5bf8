import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, statfs, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { applyLayer, type LayerLimits } from './applyLayer.js';
import { removeTree } from './diskTree.js';
import { ownedSnapshotName, snapshotChainNames } from './chainID.js';
import { bindMount, isMountPoint, listMountPoints, mountOverlay, unmount } from './mounts.js';
import { processStart } from './processStart.js';
import type { Snapshotter } from './Snapshotter.js';

/** Most entries one layer may hold (as an ADD archive's DEFAULT_EXTRACT_LIMITS). */
const MAX_LAYER_ENTRIES = 1_000_000;

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotInfo {
  /** The key of an active/view snapshot or the name of a committed one. */
  name: string;
  kind: SnapshotKind;
  /** Name of the committed parent snapshot, if any. */
  parent?: string;
  createdAt: string;
  /** The tenant a committed snapshot is the own of (committed with `owner`); absent: shared. */
  tenant?: string;
}

export interface ActiveSnapshot {
  key: string;
  /** Where the snapshot's filesystem is mounted (the container rootfs). */
  mountpoint: string;
  /** The writable layer (overlay upper dir) to diff after the run; undefined for views. */
  upperdir?: string;
  readonly: boolean;
  /** Unmounts (idempotent). The snapshot stays until commit() or remove(). */
  release(): Promise<void>;
}

export interface SnapshotUsage {
  /** Bytes on disk of this snapshot's own layer (hardlinks counted once). */
  size: number;
  inodes: number;
}

export interface ChainLayer {
  /** sha256 of the uncompressed layer tar, as claimed: unpacking checks it. */
  diffID: string;
  /** sha256 of the blob `open()` reads (compressed), checked where the blob was stored. */
  digest: string;
  mediaType?: string;
  open(): Readable | Promise<Readable>;
}

export interface PrepareOptions {
  /** Unmounts the snapshot when aborted. */
  signal?: AbortSignal;
}

interface Owner { pid: number; start: string }

interface SnapshotMeta {
  id: string;
  kind: SnapshotKind;
  name: string;
  parent?: string;
  createdAt: string;
  /** The process an active or view snapshot belongs to (see cleanupStale). */
  owner?: Owner;
  /** The tenant whose own a committed snapshot is (see commit); its prune removes it. */
  tenant?: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * containerd-style overlayfs snapshotter. Layout under rootDir: `s/<id>/{fs,work,merged,meta.json}`.
 * Short ids and lowerdirs given relative to rootDir keep the mount options of long chains under a
 * page. Committed snapshots of unpacked image layers are named by snapshotChainNames, a step's
 * results by ownedSnapshotName. One process owns a rootDir at a time (metadata is cached in memory).
 */
export class OverlaySnapshotter implements Snapshotter {
  readonly rootDir: string;
  private index: Map<string, SnapshotMeta> | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private readonly inflight = new Map<string, Promise<void>>();
  private owner: Owner | undefined;

  constructor(rootDir: string) {
    this.rootDir = resolve(rootDir);
  }

  private dir(id: string): string {
    return join(this.rootDir, 's', id);
  }

  /** Serialises metadata changes so names stay unique under concurrent calls. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.lock.then(fn, fn);
    this.lock = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<Map<string, SnapshotMeta>> {
    if (this.index) return this.index;
    await mkdir(join(this.rootDir, 's'), { recursive: true });
    const index = new Map<string, SnapshotMeta>();
    for (const id of await readdir(join(this.rootDir, 's'))) {
      try {
        const meta = JSON.parse(await readFile(join(this.dir(id), 'meta.json'), 'utf8')) as SnapshotMeta;
        index.set(meta.name, meta);
      } catch {
        // No metadata: a snapshot whose creation was interrupted; cleanupStale() removes it.
      }
    }
    this.owner = { pid: process.pid, start: (await processStart(process.pid)) ?? '' };
    this.index = index;
    return index;
  }

  private async writeMeta(meta: SnapshotMeta): Promise<void> {
    const tmp = join(this.dir(meta.id), `.meta-${randomBytes(4).toString('hex')}`);
    await writeFile(tmp, JSON.stringify(meta));
    await rename(tmp, join(this.dir(meta.id), 'meta.json'));
  }

  private async committed(name: string): Promise<SnapshotMeta> {
    const meta = (await this.load()).get(name);
    if (!meta || meta.kind !== 'committed') {
      throw new Error(`snapshot "${name}" is not a committed snapshot in ${this.rootDir}: commit it first or pull its layers with ensureChain()`);
    }
    return meta;
  }

  /** Relative fs dirs of a committed chain, top first. */
  private async chain(parent: string | undefined): Promise<SnapshotMeta[]> {
    const out: SnapshotMeta[] = [];
    for (let name = parent; name !== undefined;) {
      const meta = await this.committed(name);
      out.push(meta);
      name = meta.parent;
    }
    return out;
  }

  /** Absolute lower dirs (top first) of a committed snapshot and its ancestors. */
  async lowerDirs(name: string): Promise<string[]> {
    return (await this.chain(name)).map((m) => join(this.dir(m.id), 'fs'));
  }

  private info(meta: SnapshotMeta): SnapshotInfo {
    return { name: meta.name, kind: meta.kind, ...(meta.parent !== undefined ? { parent: meta.parent } : {}), createdAt: meta.createdAt, ...(meta.tenant !== undefined ? { tenant: meta.tenant } : {}) };
  }

  private async create(key: string, parent: string | undefined, kind: 'active' | 'view'): Promise<{ meta: SnapshotMeta; lowers: SnapshotMeta[] }> {
    return this.exclusive(async () => {
      const index = await this.load();
      if (index.has(key)) throw new Error(`snapshot key "${key}" already exists in ${this.rootDir}: use a unique key or remove() the old one`);
      const lowers = await this.chain(parent);
      const id = randomBytes(4).toString('hex');
      const dir = this.dir(id);
      await mkdir(dir);
      await Promise.all(['fs', 'work', 'merged'].map((d) => mkdir(join(dir, d))));
      const meta: SnapshotMeta = { id, kind, name: key, ...(parent !== undefined ? { parent } : {}), createdAt: new Date().toISOString(), owner: this.owner };
      // Recorded before mounting so a killed process leaves enough behind for cleanupStale().
      await this.writeMeta(meta);
      index.set(key, meta);
      return { meta, lowers };
    });
  }

  private async mount(meta: SnapshotMeta, lowers: SnapshotMeta[], signal: AbortSignal | undefined): Promise<ActiveSnapshot> {
    const dir = this.dir(meta.id);
    const target = join(dir, 'merged');
    const readonly = meta.kind === 'view';
    const rel = (id: string, sub: string): string => `s/${id}/${sub}`;
    try {
      signal?.throwIfAborted();
      if (lowers.length === 0) await bindMount(join(dir, 'fs'), target, readonly);
      else if (readonly && lowers.length === 1) await bindMount(join(this.dir(lowers[0].id), 'fs'), target, true);
      else {
        await mountOverlay({
          lowerDirs: lowers.map((l) => rel(l.id, 'fs')),
          ...(readonly ? {} : { upperDir: rel(meta.id, 'fs'), workDir: rel(meta.id, 'work') }),
          target, cwd: this.rootDir, readonly,
        });
      }
    } catch (err) {
      await unmount(target).catch(() => undefined);
      await this.remove(meta.name).catch(() => undefined);
      throw err;
    }
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      signal?.removeEventListener('abort', onAbort);
      await unmount(target);
    };
    const onAbort = (): void => { void release().catch(() => undefined); };
    signal?.addEventListener('abort', onAbort, { once: true });
    return { key: meta.name, mountpoint: target, ...(readonly ? {} : { upperdir: join(dir, 'fs') }), readonly, release };
  }

  /** A writable snapshot on top of committed `parent` (or empty), mounted at `mountpoint`. */
  async prepare(key: string, parent?: string, options: PrepareOptions = {}): Promise<ActiveSnapshot> {
    const { meta, lowers } = await this.create(key, parent, 'active');
    return this.mount(meta, lowers, options.signal);
  }

  /** A read-only mount of committed `parent`. */
  async view(key: string, parent?: string, options: PrepareOptions = {}): Promise<ActiveSnapshot> {
    const { meta, lowers } = await this.create(key, parent, 'view');
    return this.mount(meta, lowers, options.signal);
  }

  /**
   * Turns active snapshot `key` into committed snapshot `name` (unmounting it first). `owner`: the
   * tenant whose own it is (an ownedSnapshotName), recorded in its metadata for that tenant's prune.
   */
  async commit(name: string, key: string, options: { owner?: string } = {}): Promise<SnapshotInfo> {
    return this.exclusive(async () => {
      const index = await this.load();
      const meta = index.get(key);
      if (!meta || meta.kind !== 'active') throw new Error(`cannot commit "${key}": no active snapshot with that key in ${this.rootDir}; prepare() it first`);
      if (index.has(name)) throw new Error(`cannot commit "${key}" as "${name}": a snapshot with that name already exists; remove() it or pick another name`);
      const dir = this.dir(meta.id);
      await unmount(join(dir, 'merged'));
      await removeTree(join(dir, 'work'));
      const committed: SnapshotMeta = {
        id: meta.id, kind: 'committed', name, ...(meta.parent !== undefined ? { parent: meta.parent } : {}), createdAt: new Date().toISOString(),
        ...(options.owner !== undefined ? { tenant: options.owner } : {}),
      };
      await this.writeMeta(committed);
      index.delete(key);
      index.set(name, committed);
      return this.info(committed);
    });
  }

  /** Removes an active/view snapshot (unmounting it) or a committed one without children. */
  async remove(name: string): Promise<void> {
    return this.exclusive(async () => {
      const index = await this.load();
      const meta = index.get(name);
      if (!meta) throw new Error(`cannot remove snapshot "${name}": it does not exist in ${this.rootDir}`);
      if (meta.kind === 'committed') {
        const child = [...index.values()].find((m) => m.parent === name);
        if (child) throw new Error(`cannot remove snapshot "${name}": "${child.name}" is built on it; remove that first`);
      }
      const dir = this.dir(meta.id);
      await unmount(join(dir, 'merged'));
      // Drop the metadata first: a crash mid-delete leaves a dir without meta, which cleanupStale() removes.
      await rm(join(dir, 'meta.json'), { force: true });
      index.delete(name);
      await removeTree(dir);
    });
  }

  async stat(name: string): Promise<SnapshotInfo | undefined> {
    const meta = (await this.load()).get(name);
    return meta ? this.info(meta) : undefined;
  }

  async list(): Promise<SnapshotInfo[]> {
    return [...(await this.load()).values()].map((m) => this.info(m)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Disk use of one snapshot's own layer (st_blocks, hardlinks counted once). */
  async usage(name: string): Promise<SnapshotUsage> {
    const meta = (await this.load()).get(name);
    if (!meta) throw new Error(`no snapshot "${name}" in ${this.rootDir}`);
    const seen = new Set<string>();
    let size = 0;
    let inodes = 0;
    const walk = async (path: string): Promise<void> => {
      const st = await lstat(path, { bigint: true });
      const ino = `${st.dev}:${st.ino}`;
      if (!seen.has(ino)) {
        seen.add(ino);
        inodes++;
        size += Number(st.blocks) * 512;
      }
      if (st.isDirectory()) for (const entry of await readdir(path)) await walk(join(path, entry));
    };
    await walk(join(this.dir(meta.id), 'fs'));
    return { size, inodes };
  }

  /**
   * Makes sure every layer of an image is unpacked as a committed snapshot named by
   * snapshotChainNames (diffIDs and blob digests), unpacking only the missing ones (bottom up)
   * and checking each against its diffID, and returns the top name. With `owner`, the highest
   * snapshot of the chain may also be one of the owner's (ownedSnapshotName: a step's result);
   * what is unpacked onto one of those is the owner's too, since it holds what the step left.
   */
  async ensureChain(layers: readonly ChainLayer[], options: { owner?: string } = {}): Promise<string> {
    if (layers.length === 0) throw new Error('ensureChain needs at least one layer: an image without layers has no rootfs');
    const shared = snapshotChainNames(layers);
    const { owner } = options;
    const owned = (i: number) => ownedSnapshotName(owner!, shared[i]);
    const index = await this.load();
    const committed = (name: string) => index.get(name)?.kind === 'committed';
    let start = shared.length;
    let ownedBelow = false;
    for (; start > 0; start--) {
      if (committed(shared[start - 1])) break;
      if (owner !== undefined && committed(owned(start - 1))) { ownedBelow = true; break; }
    }
    const nameAt = (i: number) => (ownedBelow ? owned(i) : shared[i]);
    for (let i = start; i < shared.length; i++) {
      const name = nameAt(i);
      let pending = this.inflight.get(name);
      if (!pending) {
        pending = this.unpack(name, i > 0 ? nameAt(i - 1) : undefined, layers[i], ownedBelow ? owner : undefined).finally(() => this.inflight.delete(name));
        this.inflight.set(name, pending);
      }
      await pending;
    }
    return nameAt(shared.length - 1);
  }

  private async unpack(chainId: string, parent: string | undefined, layer: ChainLayer, owner: string | undefined): Promise<void> {
    if ((await this.load()).get(chainId)?.kind === 'committed') return;
    const key = `extract-${randomBytes(6).toString('hex')} ${chainId}`;
    const { meta, lowers } = await this.create(key, parent, 'active');
    try {
      const upper = join(this.dir(meta.id), 'fs');
      await applyLayer(upper, await layer.open(), {
        ...(layer.mediaType ? { mediaType: layer.mediaType } : {}),
        whiteouts: 'overlay',
        lowerDirs: lowers.map((l) => join(this.dir(l.id), 'fs')),
        expectedDiffID: layer.diffID,
        limits: await this.unpackLimits(),
      });
      await this.commit(chainId, key, { owner });
    } catch (err) {
      await this.remove(key).catch(() => undefined);
      throw err;
    }
  }

  /**
   * What one layer may unpack to: as an ADD archive on a worker, 90% of the free space of the
   * disk the snapshots live on, so a base image's layer of GiBs of zeros (a few KiB of zstd)
   * fails at its header instead of filling the disk every tenant's builds share.
   */
  private async unpackLimits(): Promise<LayerLimits> {
    const { bavail, bsize } = await statfs(this.rootDir);
    return {
      maxBytes: Math.floor(bavail * bsize * 0.9), maxEntries: MAX_LAYER_ENTRIES,
      remedy: 'a worker unpacks a layer within 90% of its free disk space: use a smaller base image, or have the operator free space on the workers',
    };
  }

  /**
   * Unmounts and deletes active/view snapshots whose owning process is gone (killed workers),
   * and half-created snapshot dirs. Snapshots of live processes, this one included, are kept.
   */
  async cleanupStale(): Promise<string[]> {
    return this.exclusive(async () => {
      const index = await this.load();
      const removed: string[] = [];
      const mounts = new Set(await listMountPoints());
      for (const id of await readdir(join(this.rootDir, 's'))) {
        const dir = this.dir(id);
        let meta: SnapshotMeta | undefined;
        try {
          meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8')) as SnapshotMeta;
        } catch {
          meta = undefined;
        }
        if (meta?.kind === 'committed') continue;
        if (meta?.owner && (await processStart(meta.owner.pid)) === meta.owner.start) continue;
        if (mounts.has(join(dir, 'merged')) || (await exists(join(dir, 'merged')) && (await isMountPoint(join(dir, 'merged'))))) {
          await unmount(join(dir, 'merged'));
        }
        await rm(join(dir, 'meta.json'), { force: true });
        await removeTree(dir);
        if (meta) index.delete(meta.name);
        removed.push(meta?.name ?? id);
      }
      return removed;
    });
  }
}
