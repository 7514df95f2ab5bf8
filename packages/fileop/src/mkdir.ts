import { lutimes } from 'node:fs/promises';
import { ensureDir, lstatOrNull, resolveInRoot, type Owner, ROOT_OWNER, showPath } from './destFs.js';
import { FileOpError } from './FileOpError.js';

export interface MkdirOptions {
  /** The rootfs directory. */
  root: string;
  /** Absolute path inside root. */
  path: string;
  /** Owner of the directories this creates (default root); existing ones are left alone. */
  owner?: Owner;
  /** Mode of created directories (default 0o755). */
  mode?: number;
  /**
   * Seconds: the time of the directory at `path` when this creates it (BuildKit's mkdir
   * WithCreatedTime; its parents then carry the time their new entries gave them, as there).
   */
  createdTime?: number;
}

/** WORKDIR: mkdir -p inside root, following the rootfs' own symlinks without leaving it. Returns the real path. */
export async function mkdir(opts: MkdirOptions): Promise<string> {
  if (!opts.path.startsWith('/')) throw new FileOpError('EBADARG', `mkdir path "${opts.path}" must be absolute`);
  const existed = opts.createdTime !== undefined && (await lstatOrNull(await resolveInRoot(opts.root, opts.path))) !== null;
  const made = await ensureDir(opts.root, opts.path, opts.mode ?? 0o755, opts.owner ?? ROOT_OWNER, showPath(opts.path));
  if (opts.createdTime !== undefined && !existed) await lutimes(made, opts.createdTime, opts.createdTime);
  return made;
}
