// Measuring and removing trees that RUN steps write (overlay upper dirs, cache mounts, scratch
// dirs), with GNU du, find and rm where node's own walks fall short. A step is untrusted: it can
// swap a directory for a link to / between a walk's lstat and its readdir, and can nest deeper
// than PATH_MAX, where every lookup by path fails: a 50 MiB file at depth 2,100 went uncounted
// under any disk limit, and fs.rm gave up on such a tree (ENAMETOOLONG), leaving it on disk.
// Their fts walks relative to open directories, checks each directory's dev/ino as it enters it
// (fts_safe_changedir) and handles any depth.
import { execFile, spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/**
 * Bytes allocated under `dir` as `du -sx -B1` counts them (blocks, hard links once, one
 * filesystem); 0 when it is gone. With `apparent`, the files' sizes instead (`--apparent-size`:
 * a sparse file counts whole). With `modifiedBefore` (epoch ms): only the entries other than
 * directories last modified before then.
 */
export async function diskUsage(dir: string, opts: { modifiedBefore?: number; apparent?: boolean } = {}): Promise<number> {
  if (opts.modifiedBefore !== undefined) return oldEntriesUsage(dir, opts.modifiedBefore);
  const args = ['-sx', '-B1', ...(opts.apparent ? ['--apparent-size'] : []), '--', dir];
  // du exits 1 when an entry vanished while it looked, and still prints the total.
  const stdout = await new Promise<string>((resolve) => execFile('du', args, (_err, out) => resolve(out)));
  const total = Number.parseInt(stdout, 10);
  return Number.isFinite(total) ? total : 0;
}

async function oldEntriesUsage(dir: string, modifiedBefore: number): Promise<number> {
  const find = spawn('find', [dir, '-xdev', '!', '-type', 'd', '!', '-newermt', `@${(modifiedBefore / 1000).toFixed(3)}`, '-printf', '%n %D:%i %b\n'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const exited = once(find, 'close');
  const seen = new Set<string>();
  let total = 0;
  for await (const line of createInterface({ input: find.stdout })) {
    const [links, inode, blocks] = line.split(' ');
    if (links !== '1') {
      if (seen.has(inode!)) continue;
      seen.add(inode!);
    }
    total += Number(blocks) * 512;
  }
  await exited;
  return total;
}

/**
 * `rm -rf` of a tree a step may have written. fs.rm first (no process to start, the common
 * case); what it cannot remove (a tree deeper than PATH_MAX) goes with GNU rm, which also stays
 * on the tree's filesystem (a mount left inside is not emptied).
 */
export async function removeTree(path: string): Promise<void> {
  try {
    await rm(path, { recursive: true, force: true });
    return;
  } catch {
    // Below: rm(1) says why, if it cannot either.
  }
  const stderr = await new Promise<string>((resolve) => execFile('rm', ['-rf', '--one-file-system', '--', path], (err, _out, errOut) => resolve(err ? errOut || err.message : '')));
  if (stderr) throw new Error(`cannot remove ${path}: ${stderr.trim().split('\n')[0]}`);
}
