// Directories that a builder or a downloaded archive names are made one lstat'ed component at a
// time. A name this code made or checked earlier is never trusted by its string: on a
// case-insensitive or normalising filesystem (macOS, Windows) `X/` and `x` are one entry, so a
// link sent as `x` replaces the directory remembered as `X`. Identities (dev, ino) are compared
// instead, and a link anywhere on the way is seen whatever its name's spelling.
import type { Stats } from 'node:fs';
import { lstat, mkdir, rm, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';

/**
 * An inode, as lstat/fstat tell it. Its type too: a number freed by removing the entry is often
 * the very one the link put in its place gets.
 */
export interface Identity { dev: number; ino: number; type: number }

const S_IFMT = 0o170000;

export function sameIdentity(st: Stats | null | undefined, id: Identity | undefined): boolean {
  return !!st && !!id && st.dev === id.dev && st.ino === id.ino && (st.mode & S_IFMT) === id.type;
}

/** A component on the way that is not a directory, where `replace` is false. */
export class NotADirectoryError extends Error {
  constructor(readonly path: string, readonly isLink: boolean) {
    super(`${path} is ${isLink ? 'a symlink' : 'not a directory'}`);
  }
}

/**
 * Makes `root/rel` a real directory and answers its identity. `root` itself must exist (it is
 * the user's to choose, a link or not). Every component below it is lstat'ed in turn, never
 * followed: a missing one is made, a link or file in the way is removed and made a directory
 * (`replace`) or refused with NotADirectoryError.
 */
export async function makeRealDir(root: string, rel: string, replace: boolean): Promise<Identity> {
  let current = root;
  let st: Stats | null = null;
  for (const part of rel.split(sep).filter(Boolean)) {
    current = join(current, part);
    st = await lstat(current).catch(() => null);
    if (st?.isDirectory()) continue;
    if (st && !replace) throw new NotADirectoryError(current, st.isSymbolicLink());
    if (st) await rm(current, { recursive: true, force: true });
    await mkdir(current);
    st = await lstat(current);
  }
  return identityOf(st ?? await stat(root));
}

export function identityOf(st: Stats): Identity {
  return { dev: st.dev, ino: st.ino, type: st.mode & S_IFMT };
}
