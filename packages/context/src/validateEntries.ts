import { ContextError } from './ContextError.js';
import { S_IFMT, S_IFDIR, S_IFLNK, S_IFREG, comparePaths, isDirectory, isRegular, sameModTime, type ContextEntry } from './ContextEntry.js';
import { sameXattrs } from './contextXattrs.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

/** Checks one entry on its own; throws a ContextError naming the path. */
export function validateEntry(e: ContextEntry): void {
  const p = e.path;
  const where = JSON.stringify(p);
  if (p === '') throw new ContextError('context entry has an empty path; the client must send relative file paths');
  if (p.startsWith('/')) throw new ContextError(`context entry ${where} is an absolute path; paths must be relative to the context root`);
  if (p.includes('\0')) throw new ContextError(`context entry ${where} contains a NUL byte`);
  for (const part of p.split('/')) {
    if (part === '..') throw new ContextError(`context entry ${where} contains ".."; paths must stay inside the context`);
    if (part === '' || part === '.') throw new ContextError(`context entry ${where} is not a clean path; use single "/" separators and no "." components`);
  }
  const type = e.mode & S_IFMT;
  if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK) {
    throw new ContextError(`context entry ${where} is a ${describeFileType(e.mode)}; only regular files, directories and symlinks can be sent — remove it or add it to .dockerignore`);
  }
  if (!Number.isSafeInteger(e.size) || e.size < 0) throw new ContextError(`context entry ${where} has invalid size ${e.size}`);
  if (type === S_IFREG && !DIGEST_RE.test(e.digest)) {
    throw new ContextError(`context entry ${where} has invalid digest "${e.digest}"; expected sha256:<64 hex chars>`);
  }
  if (e.modTime !== undefined && !/^-?[0-9]{1,19}$/.test(e.modTime)) {
    throw new ContextError(`context entry ${where} has invalid modification time "${e.modTime.slice(0, 40)}"; expected nanoseconds since the Unix epoch`);
  }
  if (type === S_IFLNK && e.linkTarget === '') throw new ContextError(`context entry ${where} is a symlink with an empty target`);
  if (e.hardlinkTo !== undefined) {
    // Only the other names of a regular file are hard links (fsutil links nothing else).
    if (type !== S_IFREG) throw new ContextError(`context entry ${where} is a ${describeFileType(e.mode)} with a hard link target; only a regular file can be a hard link`);
    if (e.hardlinkTo === p) throw new ContextError(`context entry ${where} is a hard link to itself; a hard link must name an earlier regular file of the context`);
  }
}

export function describeFileType(mode: number): string {
  switch (mode & S_IFMT) {
    case 0o010000: return 'fifo';
    case 0o020000: return 'character device';
    case 0o060000: return 'block device';
    case 0o140000: return 'socket';
    case S_IFREG: return 'regular file';
    case S_IFDIR: return 'directory';
    case S_IFLNK: return 'symlink';
    default: return `file of unknown type (mode ${mode.toString(8)})`;
  }
}

/**
 * Checks the entry set as a whole: no duplicates, nothing nested under a file or symlink, and
 * every hard link names an earlier regular file of the set, the first name of its file (no
 * chains), with the same mode, size, digest, time and attributes. A hard link is only ever
 * made between names of one tree: a name outside the context, a directory or a symlink would
 * let a client have a worker link (and a build read) something that is not its own file.
 * Symlinks may point anywhere, as BuildKit sends them: they are stored as links, never
 * followed on a host. Whatever resolves them (COPY sources, bind-mount sources) does so inside
 * the context's root, as it does for an image's symlinks (fileop resolveScoped, pathInRoot).
 */
export function validateEntrySet(entries: readonly ContextEntry[]): void {
  const byPath = new Map<string, ContextEntry>();
  for (const e of entries) {
    if (byPath.has(e.path)) throw new ContextError(`context entry ${JSON.stringify(e.path)} is listed twice`);
    byPath.set(e.path, e);
  }
  for (const e of entries) {
    let slash = e.path.lastIndexOf('/');
    while (slash > 0) {
      const parent = byPath.get(e.path.slice(0, slash));
      if (parent && !isDirectory(parent)) {
        throw new ContextError(`context entry ${JSON.stringify(e.path)} is nested under ${JSON.stringify(parent.path)}, which is not a directory`);
      }
      slash = e.path.lastIndexOf('/', slash - 1);
    }
    if (e.hardlinkTo !== undefined) checkHardlink(e, e.hardlinkTo, byPath.get(e.hardlinkTo));
  }
}

function checkHardlink(e: ContextEntry, to: string, target: ContextEntry | undefined): void {
  const what = `context entry ${JSON.stringify(e.path)} is a hard link to ${JSON.stringify(to.slice(0, 200))}`;
  if (!target) throw new ContextError(`${what}, which is not an entry of the context; a hard link must name an earlier regular file of the same context`);
  if (!isRegular(target)) throw new ContextError(`${what}, which is a ${describeFileType(target.mode)}; a hard link must name a regular file`);
  if (target.hardlinkTo !== undefined) throw new ContextError(`${what}, which is itself a hard link; name the file's first name in walk order`);
  if (comparePaths(target.path, e.path) >= 0) throw new ContextError(`${what}, which comes after it in walk order; the first name of a file must be the target`);
  if (target.mode !== e.mode || target.size !== e.size || target.digest !== e.digest || !sameModTime(target, e) || !sameXattrs(target.xattrs, e.xattrs)) {
    throw new ContextError(`${what} but differs from it in mode, size, content, time or attributes; the names of one file have the same metadata`);
  }
}


