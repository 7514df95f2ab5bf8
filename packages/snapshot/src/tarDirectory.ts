import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { Stats } from 'node:fs';
import { writeLayerBlob, type LayerBlob, type LayerBlobOptions } from './layerBlob.js';
import { compareBytes, OCI_OPAQUE_WHITEOUT, OCI_WHITEOUT_PREFIX, sortInWalkOrder, writeLayerTar, type LayerEntry } from './writeLayerTar.js';
import { OVERLAY_XATTR_PREFIX, readXattrs } from './xattrs.js';

/** Linux's limit on a path named in one call. */
const PATH_MAX = 4096;

export interface TarDirectoryOptions extends LayerBlobOptions {
  /** Clamp mtimes to SOURCE_DATE_EPOCH (seconds). */
  sourceDateEpoch?: number;
  /** diffUpper: opens the filesystem the upper dir was made on (see WalkOptions.lower). */
  lower?: () => Promise<string>;
}

const CAPABILITY_XATTR = 'security.capability';

interface WalkOptions {
  /** Convert overlayfs whiteouts (char 0/0, trusted.overlay.opaque=y) into OCI whiteouts. */
  overlay: boolean;
  /**
   * The filesystem the upper dir was made on. With it the diff is BuildKit's overlay differ's:
   * what overlayfs copied up unchanged (same metadata, and same content where the times cannot
   * tell) is left out, as are directories holding nothing else that changed and whiteouts of
   * what the lower never had, and an opaque directory gets one whiteout per entry of the lower
   * directory that is gone instead of `.wh..wh..opq`.
   */
  lower?: () => Promise<string>;
  /**
   * Export only security.capability, as BuildKit's differ (containerd's change writer) does for
   * every layer a step makes: user.*, trusted.* and the rest stay in the snapshot.
   */
  capabilityOnly?: boolean;
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
  const entries: Array<LayerEntry & { unchanged?: boolean }> = [];
  // Whiteouts are dated 1970-01-01, as containerd 2's layer writer (current BuildKit) dates them.
  const whiteout = (path: string): LayerEntry => ({ path, type: 'file', mode: 0, uid: 0, gid: 0, mtime: 0, size: 0 });
  /** Whiteouts for what `lowerDir` holds and `upperDir` no longer does, down directories both
   *  still have (BuildKit's double-walking diff under an opaque directory). */
  const whiteoutGone = async (upperDir: string, lowerDir: string, rel: string): Promise<void> => {
    let names: string[];
    try { names = await readdir(lowerDir); } catch { return; } // absent or not a directory below
    for (const name of names) {
      const upper = await lstat(join(upperDir, name)).catch(() => null);
      if (!upper) entries.push(whiteout(`${rel}/${OCI_WHITEOUT_PREFIX}${name}`));
      else if (upper.isDirectory() && (await lstat(join(lowerDir, name)).catch(() => null))?.isDirectory()) await whiteoutGone(join(upperDir, name), join(lowerDir, name), `${rel}/${name}`);
    }
  };
  // `lowerDir`: the same directory in the lower filesystem, or null where the lower has none.
  // It is only ever descended into through real directories (lstat): the lower tree is the
  // build's, and a path through a link it made (`/l -> /etc`) would lead onto the host.
  const walk = async (dir: string, rel: string, lowerDir: string | null): Promise<void> => {
    const names = (await readdir(dir)).sort(compareBytes);
    for (const name of names) {
      const abs = join(dir, name);
      const path = rel ? `${rel}/${name}` : name;
      const st = await lstat(abs);
      const mtime = Math.floor(st.mtimeMs / 1000);
      const lowerPath = lowerDir === null ? null : join(lowerDir, name);
      const lowerSt = lowerPath === null ? null : await lstat(lowerPath).catch(() => null);
      if (options.overlay && isOverlayWhiteout(st)) {
        // A whiteout of what the lower never had (made and removed in this step) is left out.
        if (!options.lower || lowerSt) entries.push(whiteout(rel ? `${rel}/${OCI_WHITEOUT_PREFIX}${name}` : `${OCI_WHITEOUT_PREFIX}${name}`));
        continue;
      }
      const unchanged = lowerSt !== null && await sameAsLower(abs, lowerPath!);
      if (unchanged && !st.isDirectory()) continue;
      const all = readXattrs(abs);
      const xattrs = new Map<string, Uint8Array>();
      for (const [key, value] of all) {
        if (options.capabilityOnly ? key === CAPABILITY_XATTR : !key.startsWith(OVERLAY_XATTR_PREFIX)) xattrs.set(key, value);
      }
      const base = { path, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime, xattrs, ino: `${st.dev}:${st.ino}`, nlink: st.nlink };
      if (st.isDirectory()) {
        entries.push({ ...base, type: 'dir', unchanged });
        if (options.overlay && all.get(`${OVERLAY_XATTR_PREFIX}opaque`)?.toString() === 'y') {
          if (!options.lower) entries.push(whiteout(`${path}/${OCI_OPAQUE_WHITEOUT}`));
          else if (lowerSt?.isDirectory()) await whiteoutGone(abs, lowerPath!, path);
        }
        await walk(abs, path, lowerSt?.isDirectory() ? lowerPath : null);
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
  await walk(root, '', options.overlay && options.lower ? await options.lower() : null).catch((err: NodeJS.ErrnoException) => {
    // A step can nest deeper than one lookup can name; say so without the worker's own paths.
    if (err.code !== 'ENAMETOOLONG' || !err.path) throw err;
    const rel = relative(root, err.path);
    throw new Error(`the result holds a path too long to read back (${rel.length + 1} bytes, /${rel.slice(0, 40)}…): Linux names at most ${PATH_MAX} bytes at once with the worker's own prefix; make the tree shallower`);
  });
  // An unchanged directory stays only as the parent of something that changed.
  const parentsOfChanges = new Set<string>();
  for (const e of entries) {
    if (e.unchanged) continue;
    for (let at = e.path.lastIndexOf('/'); at > 0; at = e.path.lastIndexOf('/', at - 1)) parentsOfChanges.add(e.path.slice(0, at));
  }
  const kept = sortInWalkOrder(entries.filter((e) => !e.unchanged || parentsOfChanges.has(e.path)));
  // Hardlinked regular files: the first path in walk order carries the data, the rest link to it.
  const firstByInode = new Map<string, string>();
  return kept.map((entry) => {
    const { ino, nlink, unchanged: _unchanged, ...clean } = entry as LayerEntry & { ino?: string; nlink?: number; unchanged?: boolean };
    if (clean.type !== 'file' || !ino || !nlink || nlink < 2) return clean;
    const first = firstByInode.get(ino);
    if (first === undefined) {
      firstByInode.set(ino, clean.path);
      return clean;
    }
    return { path: clean.path, type: 'hardlink', linkname: first, mode: clean.mode, uid: clean.uid, gid: clean.gid, mtime: clean.mtime };
  });
}

/**
 * BuildKit's test (its overlay differ's sameDirent, after continuity) for an upper entry that
 * overlayfs copied up: same type, mode, owner, device and file capabilities; for a
 * non-directory also the same size and mtime, and where both mtimes have no nanoseconds (as
 * unpacked from a tar, which a copy-up keeps) the same symlink target or content.
 */
async function sameAsLower(upper: string, lower: string): Promise<boolean> {
  const [u, l] = await Promise.all([lstat(upper, { bigint: true }), lstat(lower, { bigint: true })]);
  if (u.mode !== l.mode || u.uid !== l.uid || u.gid !== l.gid || u.rdev !== l.rdev) return false;
  if (!sameBytes(readXattrs(upper).get(CAPABILITY_XATTR), readXattrs(lower).get(CAPABILITY_XATTR))) return false;
  if (u.isDirectory()) return true;
  if (u.size !== l.size || u.mtimeNs / 1_000_000_000n !== l.mtimeNs / 1_000_000_000n) return false;
  const [uNs, lNs] = [u.mtimeNs % 1_000_000_000n, l.mtimeNs % 1_000_000_000n];
  if (uNs !== 0n || lNs !== 0n) return uNs === lNs;
  if (u.isSymbolicLink()) return (await readlink(upper)) === (await readlink(lower));
  if (!u.isFile() || u.size === 0n) return true;
  return sameContent(upper, lower);
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a === undefined || b === undefined ? a === b : Buffer.compare(a, b) === 0;
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [fa, fb] = await Promise.all([open(a, 'r'), open(b, 'r')]);
  try {
    const [ba, bb] = [Buffer.alloc(64 * 1024), Buffer.alloc(64 * 1024)];
    for (;;) {
      const [ra, rb] = await Promise.all([fa.read(ba, 0, ba.length), fb.read(bb, 0, bb.length)]);
      if (ra.bytesRead !== rb.bytesRead || ba.compare(bb, 0, rb.bytesRead, 0, ra.bytesRead) !== 0) return false;
      if (ra.bytesRead === 0) return true;
    }
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/** Archives a directory tree as a deterministic, compressed layer blob. */
export async function tarDirectory(dir: string, options: TarDirectoryOptions): Promise<LayerBlob> {
  const entries = await collectLayerEntries(dir, { overlay: false });
  return writeLayerBlob(writeLayerTar(entries, { sourceDateEpoch: options.sourceDateEpoch }), options);
}

/**
 * Turns an overlayfs upper dir into a deterministic OCI layer: overlay whiteouts become OCI
 * whiteouts, entries are sorted, headers normalised, and diffID + digest come from one pass.
 * Of the xattrs only security.capability is kept, as in BuildKit's layers. Read the upper dir
 * only while nothing writes to the snapshot (after the container exited).
 */
export async function diffUpper(upperdir: string, options: TarDirectoryOptions): Promise<LayerBlob> {
  const entries = await collectLayerEntries(upperdir, { overlay: true, lower: options.lower, capabilityOnly: true });
  return writeLayerBlob(writeLayerTar(entries, { sourceDateEpoch: options.sourceDateEpoch }), options);
}
