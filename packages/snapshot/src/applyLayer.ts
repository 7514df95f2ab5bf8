import { execFile } from 'node:child_process';
import { createWriteStream, type Stats } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, readlink, rm, symlink, utimes } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressionFromMediaType, createDecompressor, peekBytes, sniffCompression, type LayerCompression } from './compression.js';
import { HashingStream } from './layerBlob.js';
import { createTarExtract, paxXattrs, realDirChecker, type TarHeader } from '@buildyard/oci';
import { OVERLAY_XATTR_PREFIX, restoreXattrs, type Xattrs } from './xattrs.js';

export interface ApplyLayerOptions {
  /** Layer media type; its suffix decides the decompressor. */
  mediaType?: string;
  /** Overrides the media type; when neither says, the magic bytes decide. */
  compression?: LayerCompression;
  /**
   * 'apply' (default): whiteouts delete from the existing tree in `targetDir`.
   * 'overlay': `targetDir` is an empty overlayfs upper dir; whiteouts become overlay whiteouts
   * (char device 0/0, trusted.overlay.opaque=y) and lower layers stay untouched.
   */
  whiteouts?: 'apply' | 'overlay';
  /** Overlay mode: lower dirs, top first, to copy metadata of implied parent dirs and hardlink sources from. */
  lowerDirs?: readonly string[];
  /** Fail when the uncompressed tar does not hash to this diffID. */
  expectedDiffID?: string;
  signal?: AbortSignal;
  /** Caps on what the layer may write, checked at each entry's header, before its content. */
  limits?: LayerLimits;
}

/** A cap on unpacking, so a decompression bomb (GiBs of zeros in a KiB blob) fails before it fills the disk. */
export interface LayerLimits {
  /** Most bytes the entries may declare, summed: tar header sizes (a sparse file's full size). */
  maxBytes: number;
  /** Most entries. */
  maxEntries: number;
  /** What the error tells to do (default: raise the limit if the layer is expected). */
  remedy?: string;
  /** Counts so far, which each entry adds to: layers unpacked with one object share the limits. */
  used?: { bytes: number; entries: number };
}

export interface ApplyLayerResult {
  /** sha256 of the uncompressed tar. */
  diffID: string;
  /** Bytes of uncompressed tar. */
  size: number;
  /** sha256 and size of the bytes as read (compressed). */
  digest: string;
  compressedSize: number;
  compression: LayerCompression;
}

const WHITEOUT_PREFIX = '.wh.';
/** Links followed resolving one entry's directory (Linux's MAXSYMLINKS is 40; securejoin's 255). */
const MAX_LINKS = 255;
const OPAQUE = '.wh..wh..opq';

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (error, _out, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
  });
}

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}

class LayerPathError extends Error {}
class LayerLimitError extends Error {}

/** The error for `header` when it takes the counts in `used` over `limits`, else undefined. */
function overLimits(header: TarHeader, limits: LayerLimits, used: { bytes: number; entries: number }): LayerLimitError | undefined {
  const remedy = limits.remedy ?? 'raise the unpack limit if the layer is expected';
  if (++used.entries > limits.maxEntries) return new LayerLimitError(`layer content has more than ${limits.maxEntries} entries (tar bomb?); ${remedy}`);
  // A PAX sparse file's data holds only its non-zero parts; the header says how large it is.
  const sparse = Number(header.pax?.['GNU.sparse.realsize'] ?? header.pax?.['GNU.sparse.size'] ?? 0);
  used.bytes += Math.max(header.size ?? 0, Number.isFinite(sparse) ? sparse : 0);
  if (used.bytes > limits.maxBytes) return new LayerLimitError(`layer content expands to more than ${limits.maxBytes} bytes (tar bomb?); ${remedy}`);
  return undefined;
}

/**
 * A tar entry name (or a hardlink's target) as a path under the root, as containerd's applier
 * cleans it (archive.applyNaive: filepath.Clean), and so BuildKit and Docker: "/" and any ".."
 * above the root stay at the root, so `/etc/x` is `etc/x` and `../x` is `x`. Links on the way
 * are then followed inside the root by resolveParents.
 */
function entryPath(name: string): string {
  return posix.normalize(`/${name}`).slice(1).replace(/\/+$/, '');
}

interface DirMeta { mode: number; mtime: Date; atime: Date }

/** Writes entries of one layer into a directory, keeping every write inside it. */
class TreeApplier {
  private readonly safeDirs = new Set<string>(['']);
  private readonly created = new Set<string>();
  private readonly dirs = new Map<string, DirMeta>();
  private readonly xattrs = new Map<string, Xattrs>();
  private readonly overlay: boolean;
  /**
   * The target was empty: only a path this applier made (`created`, or a directory in `dirs`)
   * can exist, so the others need no lstat first (one per entry; most of a fresh unpack's time
   * besides the writes). Only a hint: every create fails on an existing path, never replaces it.
   */
  constructor(private readonly root: string, private readonly options: ApplyLayerOptions, private readonly startsEmpty: boolean) {
    this.overlay = options.whiteouts === 'overlay';
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : join(this.root, rel);
  }

  private forget(rel: string): void {
    for (const dir of this.safeDirs) if (dir === rel || dir.startsWith(`${rel}/`)) this.safeDirs.delete(dir);
  }

  /**
   * What the lower layers show at `rel`, the topmost first, its name not followed. Every
   * directory on the way is lstat'ed, never resolved by the kernel: a layer's link there (`abs ->
   * /`, `up -> ../../..`) would lead the lookup out of the layers, to the worker's own files, whose
   * content a hardlink copy-up would take in and whose metadata an implied directory would. A link
   * or a file on the way means nothing is there, as this layer's view of it (see resolveParents).
   */
  private async lowerStat(rel: string): Promise<{ path: string; st: Stats } | undefined> {
    const parts = rel.split('/');
    for (const lower of this.options.lowerDirs ?? []) {
      let path = lower;
      let st: Stats | undefined;
      for (const [i, part] of parts.entries()) {
        path = join(path, part);
        st = await lstatOrUndefined(path);
        if (!st || (i < parts.length - 1 && !st.isDirectory())) break;
      }
      if (!st) continue; // not in this layer: the next one down may have it
      if (st.isCharacterDevice() && st.rdev === 0) return undefined; // whited out below this point
      return path === join(lower, rel) ? { path, st } : undefined;
    }
    return undefined;
  }

  /**
   * `rel` with its directory resolved as BuildKit's applier (containerd's, writing a layer into
   * its own overlay upper dir) resolves it: a symlink this layer made on the way is followed,
   * its target read inside the root (an absolute one from the root, `..` stopping there), so
   * `link -> /tmp` then `link/evil` is the root's `tmp/evil`. What an earlier layer put there is
   * not seen: the directory this layer makes hides its link or file (`lib -> usr/lib` of a base
   * layer, then `lib/x`, gives a directory `lib`, as BuildKit's overlayfs snapshotter does). The
   * entry's own name is not followed. Missing directories are made, so every directory on the
   * returned path is a real directory of the target: nothing can lead a write out of it.
   */
  private async resolveParents(rel: string, original: string): Promise<string> {
    const resolved: string[] = [];
    let pending = rel.split('/');
    const base = pending.pop()!;
    let links = 0;
    while (pending.length > 0) {
      const part = pending.shift()!;
      if (part === '..') { resolved.pop(); continue; } // from a link's target: never above the root
      const current = [...resolved, part].join('/');
      const target = this.safeDirs.has(current) ? undefined : await this.realDirOrLink(current, original);
      if (target === undefined) { resolved.push(part); continue; }
      if (++links > MAX_LINKS) throw new LayerPathError(`layer entry "${original}": too many levels of symbolic links on its way; the layer is malformed`);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...target.split('/').filter((c) => c !== '' && c !== '.'), ...pending];
    }
    return [...resolved, base].join('/');
  }

  /**
   * One directory on an entry's way: the target of this layer's symlink there, to follow, or
   * undefined once it is a real directory of the target (made if missing, or in place of an
   * earlier layer's link or file).
   */
  private async realDirOrLink(current: string, original: string): Promise<string | undefined> {
    const path = this.abs(current);
    let st = await lstatOrUndefined(path);
    // Over an overlay the target holds only this layer; applied in place, only what it recorded.
    const ours = this.overlay || this.created.has(current);
    if (st?.isSymbolicLink() && ours) return readlink(path);
    if (st && !st.isDirectory()) {
      if (ours) throw new LayerPathError(`layer entry "${original}" needs "${current}" to be a directory but it is a file: the layer is malformed`);
      await rm(path, { force: true }); // an earlier layer's link (the link, never its target) or file
      st = undefined;
    }
    if (!st) {
      const lower = this.overlay ? await this.lowerStat(current) : undefined;
      await mkdir(path, { mode: 0o755 });
      if (lower?.st.isDirectory()) {
        // An implied parent keeps the lower directory's metadata, or it would shadow it in the merged view.
        await lchown(path, lower.st.uid, lower.st.gid);
        this.dirs.set(current, { mode: lower.st.mode & 0o7777, mtime: lower.st.mtime, atime: lower.st.atime });
      } else {
        this.dirs.set(current, { mode: 0o755, mtime: new Date(), atime: new Date() });
      }
    }
    this.safeDirs.add(current);
    return undefined;
  }

  private async removeExisting(rel: string, keepDir: boolean): Promise<boolean> {
    if (this.startsEmpty && !this.created.has(rel) && !this.dirs.has(rel)) return false;
    const path = this.abs(rel);
    const st = await lstatOrUndefined(path);
    if (!st) return false;
    if (keepDir && st.isDirectory()) return true;
    await rm(path, { recursive: true, force: true });
    this.forget(rel);
    return false;
  }

  async apply(header: TarHeader, body: Readable): Promise<void> {
    const named = entryPath(header.name);
    if (named === '') return void (await drain(body)); // the layer root: the target dir keeps its own metadata
    const rel = await this.resolveParents(named, header.name);
    const slash = rel.lastIndexOf('/');
    const parent = slash < 0 ? '' : rel.slice(0, slash);
    const base = rel.slice(slash + 1);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      await drain(body);
      if (base === OPAQUE) return this.opaque(parent);
      if (base.startsWith(`${WHITEOUT_PREFIX}${WHITEOUT_PREFIX}`)) return; // other AUFS metadata: not content
      const victimName = base.slice(WHITEOUT_PREFIX.length);
      if (victimName === '') return; // a bare ".wh." names nothing
      const victim = parent ? `${parent}/${victimName}` : victimName;
      await this.removeExisting(victim, false);
      if (this.overlay) {
        await run('mknod', ['-m', '0', this.abs(victim), 'c', '0', '0']);
        this.created.add(victim);
      }
      return;
    }

    const path = this.abs(rel);
    const pax = header.pax;
    const uid = pax?.uid !== undefined ? Number(pax.uid) : header.uid ?? 0;
    const gid = pax?.gid !== undefined ? Number(pax.gid) : header.gid ?? 0;
    const mtime = pax?.mtime !== undefined ? new Date(Number(pax.mtime) * 1000) : header.mtime ?? new Date(0);
    const atime = pax?.atime !== undefined ? new Date(Number(pax.atime) * 1000) : mtime;
    const mode = (header.mode ?? 0o644) & 0o7777;
    const type = header.type ?? 'file';

    if (type === 'directory') {
      await drain(body);
      const exists = await this.removeExisting(rel, true);
      if (!exists) await mkdir(path, { mode: 0o700 });
      await lchown(path, uid, gid);
      this.dirs.set(rel, { mode, mtime, atime });
      this.safeDirs.add(rel);
    } else {
      await this.removeExisting(rel, false);
      if (type === 'file' || type === 'contiguous-file') {
        await pipeline(body, createWriteStream(path, { flags: 'wx', mode: 0o600 }));
      } else {
        await drain(body);
        if (type === 'symlink') {
          await symlink(header.linkname ?? '', path);
        } else if (type === 'link') {
          await this.hardlink(header.linkname ?? '', path, header.name);
        } else if (type === 'character-device' || type === 'block-device') {
          await run('mknod', ['-m', '0600', path, type === 'character-device' ? 'c' : 'b', String(header.devmajor ?? 0), String(header.devminor ?? 0)]);
        } else if (type === 'fifo') {
          await run('mknod', ['-m', '0600', path, 'p']);
        } else {
          return; // unknown entry types are skipped, as containerd does
        }
      }
      if (type !== 'link') {
        await lchown(path, uid, gid);
        if (type !== 'symlink') await chmod(path, mode); // after chown, which clears setuid bits
        await lutimes(path, atime, mtime);
      }
    }
    this.created.add(rel);
    this.collectXattrs(header, path, type === 'symlink');
  }

  private async hardlink(linkname: string, path: string, original: string): Promise<void> {
    const targetRel = await this.resolveParents(entryPath(linkname), original);
    const target = this.abs(targetRel);
    if (!(await lstatOrUndefined(target))) {
      const lower = this.overlay ? await this.lowerStat(targetRel) : undefined;
      if (!lower || !lower.st.isFile()) {
        throw new LayerPathError(`layer entry "${original}" is a hardlink to "${linkname}", which does not exist: the layer is malformed`);
      }
      // The link source lives in a lower layer: copy it up so both names share one inode here.
      await copyFile(lower.path, target);
      this.created.add(targetRel);
      await lchown(target, lower.st.uid, lower.st.gid);
      await chmod(target, lower.st.mode & 0o7777);
      await utimes(target, lower.st.atime, lower.st.mtime);
    }
    await link(target, path);
  }

  private collectXattrs(header: TarHeader, path: string, isSymlink: boolean): void {
    const values = paxXattrs(header);
    for (const key of [...values.keys()]) {
      // The kernel refuses user.* on symlinks, and overlay's own xattrs must never come from a layer.
      if ((isSymlink && key.startsWith('user.')) || key.startsWith(OVERLAY_XATTR_PREFIX)) values.delete(key);
    }
    if (values.size > 0) this.xattrs.set(path, values);
  }

  private async opaque(dirRel: string): Promise<void> {
    const dir = this.abs(dirRel);
    if (this.overlay) {
      if (!this.dirs.has(dirRel) && !(await lstatOrUndefined(dir))) {
        await mkdir(dir, { mode: 0o755 });
        this.dirs.set(dirRel, { mode: 0o755, mtime: new Date(), atime: new Date() });
      }
      this.opaqueDirs.add(dir);
      return;
    }
    // Hide everything the lower layers put here; keep what this layer already wrote.
    const prune = async (rel: string): Promise<void> => {
      for (const name of await readdir(this.abs(rel))) {
        const child = rel ? `${rel}/${name}` : name;
        if (!this.created.has(child)) {
          await rm(this.abs(child), { recursive: true, force: true });
          this.forget(child);
        } else if (this.dirs.has(child) && (await lstat(this.abs(child))).isDirectory()) {
          await prune(child);
        }
      }
    };
    if (await lstatOrUndefined(dir)) await prune(dirRel);
  }

  private readonly opaqueDirs = new Set<string>();

  async finish(): Promise<void> {
    // Opaque xattrs are set after everything else so they survive entries re-written later.
    for (const dir of this.opaqueDirs) {
      const current = this.xattrs.get(dir) ?? new Map<string, Buffer>();
      current.set(`${OVERLAY_XATTR_PREFIX}opaque`, Buffer.from('y'));
      this.xattrs.set(dir, current);
    }
    // What was recorded for a path may no longer be on it: a later entry of the layer can put a
    // link in place of a recorded directory or of one of its parents (see realDirChecker).
    const onRealDirs = realDirChecker(this.root);
    const xattrTargets: { path: string; xattrs: Xattrs }[] = [];
    for (const [path, xattrs] of this.xattrs) {
      const rel = relative(this.root, path);
      if (await onRealDirs(rel, this.opaqueDirs.has(path))) xattrTargets.push({ path, xattrs });
    }
    restoreXattrs(xattrTargets);
    // Directory modes and times last, deepest first, so writing children does not disturb them.
    const dirs = [...this.dirs.keys()].sort((a, b) => b.split('/').length - a.split('/').length);
    for (const rel of dirs) {
      if (!(await onRealDirs(rel, true))) continue;
      const meta = this.dirs.get(rel) as DirMeta;
      const path = this.abs(rel);
      await chmod(path, meta.mode);
      await utimes(path, meta.atime, meta.mtime);
    }
  }
}

async function drain(body: Readable): Promise<void> {
  body.resume();
  if (body.readableEnded) return;
  await new Promise<void>((resolve, reject) => {
    body.once('end', resolve);
    body.once('error', reject);
  });
}

/**
 * Unpacks one layer (gzip, zstd or plain tar) into `targetDir`, honouring OCI whiteouts, and
 * returns its diffID. Entries that would land outside `targetDir` are rejected.
 */
export async function applyLayer(targetDir: string, layer: Readable, options: ApplyLayerOptions = {}): Promise<ApplyLayerResult> {
  const head = await peekBytes(layer, 4);
  const compression = options.compression ?? compressionFromMediaType(options.mediaType) ?? sniffCompression(head);
  const compressed = new HashingStream();
  const uncompressed = new HashingStream();
  const startsEmpty = await readdir(targetDir).then((names) => names.length === 0, () => false);
  const applier = new TreeApplier(targetDir, options, startsEmpty);
  const { limits } = options;
  const used = limits?.used ?? { bytes: 0, entries: 0 };
  const extract = createTarExtract((header, body, next) => {
    const over = limits && overLimits(header, limits, used);
    if (over) {
      body.on('error', () => {}); // failing the extract fails its entry with the same error: the pipeline reports it
      return next(over);
    }
    applier.apply(header, body).then(() => next(), (err: unknown) => {
      body.resume();
      next(err);
    });
  });
  try {
    await pipeline(layer, compressed, createDecompressor(compression), uncompressed, extract,
      ...(options.signal ? [{ signal: options.signal }] : []));
  } catch (err) {
    if (err instanceof LayerPathError || err instanceof LayerLimitError) throw err;
    const message = err instanceof Error ? err.message : String(err);
    // Paths as the image has them: where this machine keeps the layer is not the build's business.
    throw new Error(`unpacking a ${compression === 'none' ? 'tar' : compression} layer failed: ${message.replaceAll(targetDir, '')}`, { cause: err });
  }
  await applier.finish();
  const diffID = uncompressed.digest();
  if (options.expectedDiffID && options.expectedDiffID !== diffID) {
    throw new Error(`a layer has diffID ${diffID} but ${options.expectedDiffID} was expected: the blob is corrupt or the image's config is wrong`);
  }
  return { diffID, size: uncompressed.bytes, digest: compressed.digest(), compressedSize: compressed.bytes, compression };
}
