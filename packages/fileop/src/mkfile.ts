import { promises as fsp } from 'node:fs';
import { join, posix } from 'node:path';
import { applyMeta, clearForFile, ensureDir, type Owner, resolveDest, ROOT_OWNER, showPath } from './destFs.js';
import { FileOpError } from './FileOpError.js';
import { cleanRel } from './resolveScoped.js';

export interface MkfileOptions {
  root: string;
  /** Absolute path inside root. Missing parents are created 0755 with the same owner. */
  path: string;
  content: string | Uint8Array;
  /** Default 0o644. */
  mode?: number;
  owner?: Owner;
  /** Default: now. */
  mtime?: Date;
  /**
   * A heredoc's name (`COPY <<NAME dest`): the file's name inside `path` when `path` ends in `/`
   * or is a directory, as BuildKit copies the heredoc's file named so to the destination.
   */
  name?: string;
}

/** Writes one file (heredoc COPY/RUN bodies); an existing non-directory at path (or where its symlink leads) is replaced. */
export async function mkfile(opts: MkfileOptions): Promise<string> {
  if (!opts.path.startsWith('/')) throw new FileOpError('EBADARG', `mkfile path "${opts.path}" must be absolute`);
  const rel = cleanRel(opts.path);
  if (rel === '' && opts.name === undefined) throw new FileOpError('EBADARG', 'mkfile path "/" names the root directory; give a file name');
  const owner = opts.owner ?? ROOT_OWNER;
  // BuildKit copies a heredoc as a file: the destination as written is resolved with every
  // symlink on it followed (see resolveDest); into a directory, the file takes the heredoc's
  // name, and whatever is at that name (a link too) is replaced.
  const dest = await resolveDest(opts.root, rel);
  const real = opts.name !== undefined && (opts.path.endsWith('/') || dest.isDir) ? posix.join(dest.rel, opts.name) : dest.rel;
  const parent = await ensureDir(opts.root, posix.dirname(real), 0o755, owner, showPath(posix.dirname(real)));
  const abs = join(parent, posix.basename(real));
  await clearForFile(abs, showPath(real));
  await fsp.writeFile(abs, opts.content, { flag: 'wx', mode: 0o600 });
  await applyMeta(abs, false, owner, opts.mode ?? 0o644, opts.mtime ?? null);
  return abs;
}
