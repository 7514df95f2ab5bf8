import { promises as fsp, type Stats } from 'node:fs';
import { basename, join, posix, resolve } from 'node:path';
import { parseChmod, type ModeTransform } from './chmodSpec.js';
import { applyMeta, clearForFile, ensureDir, lstatOrNull, mkdirOwned, type Owner, resolveDest, resolveInRoot, ROOT_OWNER, showPath } from './destFs.js';
import { extractArchive, sniffArchive, type ExtractLimits } from './extractArchive.js';
import { FileOpError } from './FileOpError.js';
import { planCopy, type SourceSelection } from './planCopy.js';
import { cleanRel } from './resolveScoped.js';
import { fsTree } from './SourceTree.js';

export interface CopyOptions extends SourceSelection {
  /** Directory the sources are read from: the build context or another stage's rootfs. */
  srcRoot: string;
  /** The target rootfs directory. */
  destRoot: string;
  /** Absolute path inside destRoot, already resolved against WORKDIR; a trailing '/' means a directory. */
  dest: string;
  /** --chown, already resolved to numbers. Default root (0:0); 'preserve' keeps the source's ids. */
  owner?: Owner | 'preserve';
  /** --chmod: octal ("755") or symbolic ("u+x,g-w"); applies to every file and directory copied. */
  chmod?: string;
  /** Create missing parents of dest (default true; Dockerfile COPY always does). */
  createDestPath?: boolean;
  /** ADD: extract local tar archives (plain, gzip, bzip2, xz) into dest instead of copying them. */
  autoExtract?: boolean;
  extractLimits?: Partial<ExtractLimits>;
  /**
   * Copies a source entry's own xattrs onto its copy (the worker passes @buildyard/snapshot's
   * copyXattrs; fileop loads no native code, since the CLI bundles it). Called once the entry's
   * owner, mode and times are set, as fsutil's copy does: a chown would clear
   * security.capability. Without it, xattrs are not copied.
   */
  copyXattrs?: (src: string, dest: string) => void;
  /** Sets an extracted archive entry's xattrs (SCHILY.xattr.* records) on it: ADD's, as docker's archive.Unpack. */
  setXattrs?: (path: string, xattrs: Map<string, Buffer>) => void;
}

export interface CopyResult {
  /** Non-directory entries written (files, symlinks, hardlinks, extracted entries). */
  filesCopied: number;
  /** Bytes of regular-file content written. */
  bytes: number;
}

interface CreatedDir { abs: string; srcPath: string; src: Stats; mode: number; owner: Owner }

/** Docker/BuildKit COPY (and local ADD) from srcRoot into destRoot. */
export async function copy(options: CopyOptions): Promise<CopyResult> {
  // Dockerfile COPY/ADD allow a wildcard that matches nothing (BuildKit sets AllowEmptyWildcard).
  const opts = { allowEmptyWildcard: true, ...options, srcRoot: resolve(options.srcRoot), destRoot: resolve(options.destRoot) };
  if (!opts.dest.startsWith('/')) throw new FileOpError('EBADARG', `copy destination "${opts.dest}" must be absolute (resolve it against WORKDIR first)`);
  const chmod = opts.chmod !== undefined ? parseChmod(opts.chmod) : null;
  const plan = await planCopy(fsTree(opts.srcRoot), opts);
  const destRel = cleanRel(opts.dest);
  // Each source is copied to dest on its own (BuildKit's fileop): dest is a directory only when
  // written as one or when it already is one, whatever the number of sources or matches.
  const destIsDir = /\/\.?$/.test(opts.dest) || destRel === '' || !!opts.parents;
  const parentOwner = opts.owner === 'preserve' || opts.owner === undefined ? ROOT_OWNER : opts.owner;
  // fsutil's copy creates missing directories with an octal --chmod, else 0755 (a symbolic
  // --chmod applies to copied entries only).
  const createdDirMode = opts.chmod !== undefined && /^[0-7]+$/.test(opts.chmod.trim()) ? parseInt(opts.chmod.trim(), 8) & 0o7777 : 0o755;
  const createParents = opts.createDestPath ?? true;
  const result: CopyResult = { filesCopied: 0, bytes: 0 };
  const createdDirs: CreatedDir[] = [];
  const copyXattrs = opts.copyXattrs ?? (() => undefined);

  const ensureParent = async (rel: string, mode = createdDirMode) => {
    if (!createParents) {
      const abs = await resolveInRoot(opts.destRoot, rel);
      const st = await lstatOrNull(abs);
      if (!st?.isDirectory()) throw new FileOpError('ENOTDIR', `destination directory ${showPath(rel)} does not exist; create it first`);
      return abs;
    }
    return ensureDir(opts.destRoot, rel, mode, parentOwner, showPath(rel));
  };

  for (let i = 0; i < plan.matched.length; i++) {
    const m = plan.matched[i];
    const srcAbs = join(opts.srcRoot, m.real);
    // Names of one file copied in this match become one file; as BuildKit copies each match
    // with its own fsutil copier (and inode map), two matches naming one file give two files.
    const hardlinks = new Map<string, string>();
    if (opts.autoExtract && m.stat.type === 'file') {
      const compression = await sniffArchive(srcAbs, m.logical);
      if (compression) {
        const dirRel = opts.parents ? posix.join(destRel, posix.dirname(m.parentsRel)) : destRel;
        // As BuildKit's unpack: the destination is made 0755 and --chmod does not touch what the
        // archive holds (--chown does).
        const dirAbs = await ensureParent(dirRel, 0o755);
        const r = await extractArchive({
          archivePath: srcAbs, compression, dir: dirAbs, label: m.logical,
          owner: opts.owner === 'preserve' ? undefined : opts.owner, limits: opts.extractLimits, setXattrs: opts.setXattrs,
        });
        result.filesCopied += r.files;
        result.bytes += r.bytes;
        continue;
      }
    }
    // Where the matched source itself lands: parent directory (absolute, real) + final name.
    let parentAbs: string;
    let name: string;
    let targetRel: string;
    if (m.stat.type === 'dir') {
      targetRel = opts.parents ? posix.join(destRel, m.parentsRel) : destRel;
    } else if (opts.parents) {
      targetRel = posix.join(destRel, m.parentsRel);
    } else if (destIsDir) {
      targetRel = posix.join(destRel, basename(m.logical));
    } else {
      // The copy's own destination: a final symlink is written through (see resolveDest).
      const real = await resolveDest(opts.destRoot, destRel);
      targetRel = real.isDir ? posix.join(destRel, basename(m.logical)) : real.rel;
    }
    targetRel = cleanRel(targetRel);
    if (targetRel === '') {
      parentAbs = opts.destRoot;
      name = '';
    } else {
      parentAbs = await ensureParent(posix.dirname(targetRel));
      name = posix.basename(targetRel);
    }

    const dirAbs = new Map<string, string>(); // source-relative dir -> real absolute dest dir
    // The directory a directory source's contents went into takes that source's mtime, whether
    // this copy created it or not (fsutil's copy, as buildkitd v0.11.6 shows); set once its
    // contents are written, since writing them bumps it.
    let contentsDir: { abs: string; mtime: Date } | undefined;
    for (const e of plan.entries) {
      if (e.source !== i) continue;
      let abs: string;
      if (e.rel === '') abs = name === '' ? parentAbs : join(parentAbs, name);
      else abs = join(dirAbs.get(posix.dirname(e.rel) === '.' ? '' : posix.dirname(e.rel))!, posix.basename(e.rel));
      const shown = showPath(posix.join(targetRel, e.rel));
      const srcPath = join(opts.srcRoot, e.real);
      const src = await fsp.lstat(srcPath);
      const owner = opts.owner === 'preserve' ? { uid: src.uid, gid: src.gid } : opts.owner ?? ROOT_OWNER;
      const mode = modeFor(src, chmod);
      if (src.isDirectory() && e.rel === '' && m.stat.type === 'dir' && !opts.parents) {
        // A directory source's contents go into dest, which is created like a parent (mode and
        // owner from --chmod/--chown, not from the source directory) or left as it is.
        const into = name === '' ? parentAbs : await ensureParent(targetRel);
        dirAbs.set(e.rel, into);
        contentsDir = { abs: into, mtime: src.mtime };
      } else if (src.isDirectory()) {
        dirAbs.set(e.rel, await placeDir(opts.destRoot, abs, shown, srcPath, src, mode, owner, createdDirs));
      } else if (src.isSymbolicLink()) {
        await clearForFile(abs, shown);
        await fsp.symlink(await fsp.readlink(srcPath), abs);
        await applyMeta(abs, true, owner, null, src.mtime);
        copyXattrs(srcPath, abs);
        result.filesCopied++;
      } else if (src.isFile()) {
        await clearForFile(abs, shown);
        const key = `${src.dev}:${src.ino}`;
        const linked = src.nlink > 1 ? hardlinks.get(key) : undefined;
        if (linked) {
          await fsp.link(linked, abs);
        } else {
          await fsp.copyFile(srcPath, abs);
          await applyMeta(abs, false, owner, mode, src.mtime);
          copyXattrs(srcPath, abs);
          if (src.nlink > 1) hardlinks.set(key, abs);
          result.bytes += src.size;
        }
        result.filesCopied++;
      } else {
        throw new FileOpError('EUNSUPPORTED', `cannot copy ${e.real || '.'}: special files (devices, sockets, fifos) are not supported; exclude it with --exclude`);
      }
    }
    if (contentsDir) await fsp.utimes(contentsDir.abs, contentsDir.mtime, contentsDir.mtime);
  }
  // Directory metadata last, deepest first, so writing their contents does not bump mtimes.
  for (const d of createdDirs.reverse()) {
    await applyMeta(d.abs, false, d.owner, d.mode, d.src.mtime);
    copyXattrs(d.srcPath, d.abs);
  }
  return result;
}

function modeFor(src: Stats, chmod: ModeTransform | null): number {
  const mode = src.mode & 0o7777;
  return chmod ? chmod(mode, src.isDirectory()) : mode;
}

/** Creates (or reuses, merging) the directory at abs; returns its real absolute path. */
async function placeDir(destRoot: string, abs: string, shown: string, srcPath: string, src: Stats, mode: number, owner: Owner, created: CreatedDir[]): Promise<string> {
  let st = await lstatOrNull(abs);
  let real = abs;
  if (st?.isSymbolicLink()) {
    real = await resolveInRoot(destRoot, abs.slice(destRoot.length));
    st = await lstatOrNull(real);
  }
  if (!st) {
    if (real !== abs) await ensureDir(destRoot, posix.dirname(real.slice(destRoot.length)), 0o755, ROOT_OWNER, shown);
    await mkdirOwned(real, 0o755, owner);
    created.push({ abs: real, srcPath, src, mode, owner });
  } else if (!st.isDirectory()) {
    throw new FileOpError('ENOTDIR', `cannot copy a directory onto ${shown}: it exists and is not a directory; remove it first or pick another destination`);
  }
  return real;
}
