import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stats } from 'node:fs';
import { writeLayerBlob, type LayerBlob, type LayerBlobOptions } from './layerBlob.js';
import { comparePathBytes, writeLayerTar, type LayerEntry } from './writeLayerTar.js';
import { readXattrs } from './xattrs.js';

export interface TarDirectoryOptions extends LayerBlobOptions {
  /** Clamp mtimes to SOURCE_DATE_EPOCH (seconds). */
  sourceDateEpoch?: number;
  /** diffUpper: opens the filesystem the upper dir was made on (see WalkOptions.lower). */
  lower?: () => Promise<string>;
}

export const OCI_WHITEOUT_PREFIX = '.wh.';
export const OCI_OPAQUE_WHITEOUT = '.wh..wh..opq';
const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

interface WalkOptions {
  /** Convert overlayfs whiteouts (char 0/0, trusted.overlay.opaque=y) into OCI whiteouts. */
  overlay: boolean;
  /**
   * The filesystem the upper dir was made on (asked for only when an opaque directory is met).
   * With it, an opaque directory is written as BuildKit's overlay differ writes it: one
   * whiteout per entry of the lower directory that is gone, instead of `.wh..wh..opq`.
   */
  lower?: () => Promise<string>;
}

function isOverlayWhiteout(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

function major(rdev: number): number {
  return ((rdev >> 8) & 0xfff) | ((Math.floor(rdev / 2 ** 32) & 0xfffff000) >>> 0);
}
function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
}

/**
 * Lists a directory tree as layer entries (sorted, hardlinks resolved to the first path in sort
 * order). With `overlay`, overlayfs whiteouts become `.wh.` entries and opaque directories get
 * a `.wh..wh..opq` entry; trusted.overlay.* xattrs are never exported.
 */
export async function collectLayerEntries(root: string, options: WalkOptions): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  /** Whiteouts for what `lowerDir` holds and `upperDir` no longer does, down directories both
   *  still have (BuildKit's double-walking diff under an opaque directory). */
  const whiteoutGone = async (upperDir: string, lowerDir: string, rel: string, mtime: number): Promise<void> => {
    let names: string[];
    try { names = await readdir(lowerDir); } catch { return; } // absent or not a directory below
    for (const name of names) {
      const upper = await lstat(join(upperDir, name)).catch(() => null);
      if (!upper) entries.push({ path: `${rel}/${OCI_WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime, size: 0 });
      else if (upper.isDirectory() && (await lstat(join(lowerDir, name)).catch(() => null))?.isDirectory()) await whiteoutGone(join(upperDir, name), join(lowerDir, name), `${rel}/${name}`, mtime);
    }
  };
  /**
   * `rel` in the lower filesystem when each of its components there is a directory, else null
   * (nothing below to white out). Never through a symlink: the lower tree is the build's, and
   * `readdir` through a link it made (`/l -> /etc`) would list the host's directory into the
   * layer's whiteouts.
   */
  const lowerDirOf = async (lower: string, rel: string): Promise<string | null> => {
    let dir = lower;
    for (const c of rel.split('/')) {
      dir = join(dir, c);
      if (!(await lstat(dir).catch(() => null))?.isDirectory()) return null;
    }
    return dir;
  };
  const walk = async (dir: string, rel: string): Promise<void> => {
    const names = (await readdir(dir)).sort(comparePathBytes);
    for (const name of names) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      const mtime = Math.floor(st.mtimeMs / 1000);
      if (options.overlay && isOverlayWhiteout(st)) {
        entries.push({ path: rel ? `${rel}/${OCI_WHITEOUT_PREFIX}${name}` : `${OCI_WHITEOUT_PREFIX}${name}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime, size: 0 });
        continue;
      }
      const all = readXattrs(abs);
      const xattrs = new Map<string, Uint8Array>();
      for (const [key, value] of all) if (!key.startsWith(OVERLAY_XATTR_PREFIX)) xattrs.set(key, value);
      const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime, xattrs, ino: `${st.dev}:${st.ino}`, nlink: st.nlink };
      if (st.isDirectory()) {
        entries.push({ ...base, type: 'dir' });
        if (options.overlay && all.get(`${OVERLAY_XATTR_PREFIX}opaque`)?.toString() === 'y') {
          if (options.lower) {
            const lowerDir = await lowerDirOf(await options.lower(), path);
            if (lowerDir) await whiteoutGone(abs, lowerDir, path, mtime);
          }
          else entries.push({ path: `${path}/${OCI_OPAQUE_WHITEOUT}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime, size: 0 });
        }
        await walk(abs, path);
      } else if (st.isFile()) {
        entries.push({ ...base, type: 'file', size: st.size, sourcePath: abs });
      } else if (st.isSymbolicLink()) {
        entries.push({ ...base, type: 'symlink', linkname: await readlink(abs) });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        entries.push({ ...base, type: st.isCharacterDevice() ? 'char' : 'block', devmajor: major(st.rdev), devminor: minor(st.rdev) });
      } else if (st.isFIFO()) {
        entries.push({ ...base, type: 'fifo' });
      }
      // Sockets are skipped: they cannot be archived (same as GNU tar and containerd).
    }
  };
  await walk(root, '');
  entries.sort((a, b) => comparePathBytes(a.path, b.path));
  // Hardlinked regular files: the first path in sort order carries the data, the rest link to it.
  const firstByInode = new Map<string, string>();
  return entries.map((entry) => {
    const { ino, nlink, ...clean } = entry as LayerEntry & { ino?: string; nlink?: number };
    if (clean.type !== 'file' || !ino || !nlink || nlink < 2) return clean;
    const first = firstByInode.get(ino);
    if (first === undefined) {
      firstByInode.set(ino, clean.path);
      return clean;
    }
    return { path: clean.path, type: 'hardlink', linkname: first, mode: clean.mode, uid: clean.uid, gid: clean.gid, mtime: clean.mtime };
  });
}

/** Archives a directory tree as a deterministic, compressed layer blob. */
export async function tarDirectory(dir: string, options: TarDirectoryOptions): Promise<LayerBlob> {
  const entries = await collectLayerEntries(dir, { overlay: false });
  return writeLayerBlob(writeLayerTar(entries, { sourceDateEpoch: options.sourceDateEpoch }), options);
}

/**
 * Turns an overlayfs upper dir into a deterministic OCI layer: overlay whiteouts become OCI
 * whiteouts, entries are sorted, headers normalised, and diffID + digest come from one pass.
 * Read the upper dir only while nothing writes to the snapshot (after the container exited).
 */
export async function diffUpper(upperdir: string, options: TarDirectoryOptions): Promise<LayerBlob> {
  const entries = await collectLayerEntries(upperdir, { overlay: true, lower: options.lower });
  return writeLayerBlob(writeLayerTar(entries, { sourceDateEpoch: options.sourceDateEpoch }), options);
}
