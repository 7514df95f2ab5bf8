import { posix } from 'node:path';
import { ContextError } from './ContextError.js';
import { S_IFMT, S_IFDIR, S_IFLNK, S_IFREG, isDirectory, isSymlink, type ContextEntry } from './ContextEntry.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const MAX_SYMLINK_HOPS = 40;

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
 * no symlink that resolves outside the context — following chains through other symlinks in
 * the set, since `a -> .` plus `b -> a/..` escapes although each target looks harmless.
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
  }
  for (const e of entries) {
    if (isSymlink(e) && symlinkEscapes(e.path, e.linkTarget, byPath)) {
      throw new ContextError(`symlink ${JSON.stringify(e.path)} -> ${JSON.stringify(e.linkTarget)} points outside the context; make it relative and inside the context or add it to .dockerignore`);
    }
  }
}

/** True when following `path -> target` (through symlinks known in `byPath`) leaves the context. */
export function symlinkEscapes(path: string, target: string, byPath: ReadonlyMap<string, Pick<ContextEntry, 'mode' | 'linkTarget'>>): boolean {
  if (posix.isAbsolute(target)) return true;
  let hops = 0;
  // Components still to resolve, starting from the link's directory.
  const parent = posix.dirname(path);
  let pending = [...(parent === '.' ? [] : parent.split('/')), ...target.split('/')];
  const resolved: string[] = [];
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (resolved.length === 0) return true;
      resolved.pop();
      continue;
    }
    resolved.push(part);
    const hit = byPath.get(resolved.join('/'));
    if (hit && isSymlink(hit)) {
      if (++hops > MAX_SYMLINK_HOPS) return true; // a loop: refuse rather than guess
      if (posix.isAbsolute(hit.linkTarget)) return true;
      resolved.pop();
      pending = [...hit.linkTarget.split('/'), ...pending];
    }
  }
  return false;
}

