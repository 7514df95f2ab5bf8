// Writes the files of local-type outputs (type=local/tar/oci/docker) as the server streams them.
import { constants, type Stats } from 'node:fs';
import { chmod, link, lstat, lutimes, mkdir, open, readdir, rename, rm, symlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { Writable } from 'node:stream';
import type { ExportedFile, KeyValueSpec } from '@buildyard/proto';
import { ClientError } from './ClientError.js';
import { mergedLayoutIndex, writesLayoutDir } from './layoutDir.js';
import { type Identity, identityOf, makeRealDir, sameIdentity } from './realDir.js';

/** `type=local,mode=delete` (BuildKit's LocalExporterModeDelete): dest ends up holding only what the build sent. */
export function isDeleteMode(spec: KeyValueSpec): boolean {
  return spec.type === 'local' && (spec.attrs.mode ?? '').trim().toLowerCase() === 'delete';
}

/**
 * Removes what `root` holds that the build did not send, as fsutil's receiver does with delete:
 * a directory the build sent (or a parent of something it sent) is searched, anything else
 * goes whole. Never through a link: a link is an entry like any other, removed as itself.
 */
async function prune(root: string, sent: ReadonlySet<string>): Promise<void> {
  const parents = new Set<string>();
  for (const p of sent) for (let d = dirname(p); d.length > root.length && d.startsWith(root + sep); d = dirname(d)) parents.add(d);
  const walk = async (dir: string): Promise<void> => {
    for (const name of await readdir(dir).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return []; throw err; })) {
      const path = join(dir, name);
      if (!sent.has(path) && !parents.has(path)) { await rm(path, { recursive: true, force: true }); continue; }
      if ((await lstat(path)).isDirectory()) await walk(path);
    }
  };
  await walk(root);
}

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** A layout's index.json is merged in memory: far larger is not an index a builder writes. */
const MAX_LAYOUT_INDEX = 64 << 20;

interface OpenFile {
  handle?: FileHandle;
  /** Single-file outputs are written to a temp name and renamed when complete. */
  tmp?: string;
  final: string;
  mode: number;
}

/**
 * A path as fsutil's receiver takes one: relative, `/`-separated, no empty, `.` or `..` part
 * (so never dest= itself, nor a second spelling of a name written before).
 */
function isCleanEntryPath(p: string): boolean {
  if (p === '' || p.includes('\0') || (process.platform === 'win32' && /[\\:]/.test(p))) return false;
  return p.split('/').every((part) => part !== '' && part !== '.' && part !== '..');
}

/** An entry's time (ExportedFile.mtime_ns) as fs takes it, seconds; undefined when the server sent none. */
function timeOf(f: ExportedFile): number | undefined {
  if (f.mtimeNs === undefined) return undefined;
  const ns = BigInt(f.mtimeNs);
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

export class ExportedFileWriter {
  private readonly open = new Map<string, OpenFile>();
  /** dest= directories made this run (they are the user's to choose, links or not). */
  private readonly roots = new Set<string>();
  /** Directories under a dest= made real this run, with the inode each is (see realDir). */
  private readonly realDirs = new Map<string, Identity>();
  /** Directories' times, set by finish(): every entry written into a directory changes its mtime. */
  private readonly dirTimes = new Map<string, number>();
  /** Destinations written, for the summary. */
  readonly written = new Set<string>();
  /** Regular files of type=local outputs written whole this run, by inode: what a hardlink may name. */
  private readonly files = new Map<string, Identity>();
  /** Layout directories' index.json chunks, by output, until the last one. */
  private readonly layoutIndexes = new Map<string, Buffer[]>();
  /** type=local,mode=delete: the paths each such output sent, by output index (see prune). */
  private readonly sent = new Map<number, Set<string>>();

  constructor(private readonly outputs: readonly KeyValueSpec[], private readonly stdout: Writable = process.stdout) {
    // Known from the start: a build that sends nothing for such an output leaves its dest empty.
    outputs.forEach((spec, i) => { if (isDeleteMode(spec)) this.sent.set(i, new Set()); });
  }

  private target(f: ExportedFile): { spec: KeyValueSpec; root: string; path: string; single: boolean; layout: boolean } {
    const spec = this.outputs[f.output];
    if (!spec) throw new ClientError(`the builder sent a file for output #${f.output}, but only ${this.outputs.length} were requested; the builder is misbehaving`);
    const dest = spec.attrs.dest;
    if (!dest) throw new ClientError(`the builder sent files for output #${f.output} (type=${spec.type}), which has no dest=; add dest= to the --output`);
    const layout = writesLayoutDir(spec);
    if (spec.type !== 'local' && !layout) return { spec, root: dest, path: dest, single: true, layout };
    const root = resolve(dest);
    // "": dest= itself, which write() only makes.
    if (f.path !== '' && !isCleanEntryPath(f.path)) {
      throw new ClientError(`the builder sent the file path "${f.path}" for ${root}, which is not a clean relative path (absolute, or with empty, "." or ".." parts); refusing to write it: the builder is misbehaving`);
    }
    return { spec, root, path: f.path === '' ? root : join(root, ...f.path.split('/')), single: false, layout };
  }

  /**
   * Makes `dir` (under `root`) a real directory, one component at a time. What is already there
   * is never followed: an earlier export into the same dest= (or a misbehaving builder) may have
   * left a symlink at that path, and writing through it (`out/x -> /etc`, then `x/passwd`) would
   * write anywhere on this machine. A symlink or file in the way is replaced, as the export
   * replaces what it writes over. A directory made earlier is taken as it is only while its path
   * still leads to the same inode (see realDir.ts: on macOS a later `x` link replaces `X/`).
   */
  private async realDir(root: string, dir: string): Promise<void> {
    const known = this.realDirs.get(dir);
    if (known && sameIdentity(await lstat(dir).catch(() => null), known)) return;
    if (!this.roots.has(root)) {
      await mkdir(root, { recursive: true });
      this.roots.add(root);
    }
    if (dir !== root) this.realDirs.set(dir, await makeRealDir(root, relative(root, dir), true));
  }

  /** Clears `path` for an entry of another type (never following a link there). */
  private async clear(path: string, keep: (st: Stats) => boolean): Promise<void> {
    const st = await lstat(path).catch(() => null);
    if (!st || keep(st)) return;
    await rm(path, { recursive: true, force: true });
    for (const d of this.realDirs.keys()) if (d === path || d.startsWith(path + sep)) this.realDirs.delete(d);
    for (const f of this.files.keys()) if (f === path || f.startsWith(path + sep)) this.files.delete(f);
  }

  async write(f: ExportedFile): Promise<void> {
    const { root, path, single, layout } = this.target(f);
    if (!single) this.sent.get(f.output)?.add(path);
    if (layout && f.path === 'index.json') {
      await this.writeLayoutIndex(f, root, path);
      return;
    }
    if (single && path === '-') {
      if (f.data.length > 0 && !this.stdout.write(f.data)) await new Promise((r) => this.stdout.once('drain', r));
      return;
    }
    const key = `${f.output}\0${path}`;
    const type = f.mode & S_IFMT;
    if (!single && path === root) {
      // dest= itself: made if missing, never replaced, chmod'ed or timed (it may be the user's home).
      if (type !== S_IFDIR && (f.data.length > 0 || f.linkTarget || f.hardlinkTo)) {
        throw new ClientError(`the builder sent content for ${root} itself rather than for a path inside it; refusing it: the builder is misbehaving`);
      }
      await this.realDir(root, root);
      this.written.add(this.outputs[f.output].attrs.dest);
      return;
    }
    if (!single && type === S_IFDIR) {
      await this.realDir(root, path);
      if (type === S_IFDIR) await chmod(path, f.mode & 0o7777);
      const time = timeOf(f);
      if (type === S_IFDIR && time !== undefined) this.dirTimes.set(path, time);
      this.written.add(this.outputs[f.output].attrs.dest);
      return;
    }
    if (!single && (type === S_IFLNK || f.linkTarget)) {
      await this.realDir(root, dirname(path));
      await this.clear(path, () => false);
      await symlink(f.linkTarget, path);
      // lutimes sets the link's own time; the entry it names is never touched.
      const time = timeOf(f);
      if (time !== undefined) await lutimes(path, time, time);
      this.written.add(this.outputs[f.output].attrs.dest);
      return;
    }
    if (!single && f.hardlinkTo) {
      await this.link(f, root, path);
      return;
    }
    let o = this.open.get(key);
    if (!o) {
      if (single) await mkdir(dirname(path), { recursive: true });
      else {
        await this.realDir(root, dirname(path));
        // A file with other names is replaced, not written through: they keep their content.
        // A layout's blobs are read-only files (as containerd commits them): replaced too.
        await this.clear(path, (st) => !layout && st.isFile() && st.nlink === 1);
      }
      const tmp = single ? join(dirname(path), `.${Date.now()}.${process.pid}.partial`) : undefined;
      const mode = single ? 0o644 : (f.mode & 0o7777) || 0o644;
      // O_NOFOLLOW: a link put at the path between the check above and here is refused, not followed.
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;
      o = { final: path, mode, tmp, handle: await open(tmp ?? path, flags, 0o600) };
      this.open.set(key, o);
    }
    if (f.data.length > 0) await o.handle!.write(f.data);
    if (f.last) {
      // Through the handle: chmod by path would follow a link. The time after the last write,
      // which would change it; atime too, as fsutil's chtimes.
      await o.handle!.chmod(o.mode);
      const time = timeOf(f);
      if (time !== undefined) await o.handle!.utimes(time, time);
      if (!o.tmp) this.files.set(path, identityOf(await o.handle!.stat()));
      await o.handle!.close();
      if (o.tmp) await rename(o.tmp, o.final);
      this.open.delete(key);
      this.written.add(this.outputs[f.output].attrs.dest);
    }
  }

  /**
   * A layout directory's index.json: gathered, then merged with the one already there (see
   * mergedLayoutIndex) and renamed into place, after every blob it names has been written.
   */
  private async writeLayoutIndex(f: ExportedFile, root: string, path: string): Promise<void> {
    const key = `${f.output}\0index.json`;
    const parts = this.layoutIndexes.get(key) ?? [];
    parts.push(Buffer.from(f.data));
    this.layoutIndexes.set(key, parts);
    if (parts.reduce((n, b) => n + b.length, 0) > MAX_LAYOUT_INDEX) throw new ClientError(`the builder sent an index.json over ${MAX_LAYOUT_INDEX >> 20} MiB for output #${f.output}; the builder is misbehaving`);
    if (!f.last) return;
    this.layoutIndexes.delete(key);
    await this.realDir(root, root);
    const merged = await mergedLayoutIndex(root, Buffer.concat(parts)).catch((err: Error) => { throw new ClientError(`${root}/index.json: ${err.message}`); });
    const tmp = join(root, `.index.json.${process.pid}.partial`);
    await rm(tmp, { force: true });
    const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    try { await handle.writeFile(merged); } finally { await handle.close(); }
    await this.clear(path, (st) => st.isFile());
    await rename(tmp, path);
    this.written.add(this.outputs[f.output].attrs.dest);
  }

  /**
   * Another name of a file this output wrote earlier (fsutil's DiskWriter links Stat.linkname).
   * Only such a file may be named: link(2) does not follow a link at the source, but a name
   * the builder chose freely could still pick a file of this machine that was already there.
   */
  private async link(f: ExportedFile, root: string, path: string): Promise<void> {
    const source = join(root, ...f.hardlinkTo.split('/'));
    const file = this.files.get(source);
    // Its name must still lead to that file: lstat follows the directories on the way.
    if (!isCleanEntryPath(f.hardlinkTo) || !file || source === path || !sameIdentity(await lstat(source).catch(() => null), file)) {
      throw new ClientError(`the builder sent "${f.path}" as a hardlink to "${f.hardlinkTo}", which is not a file it sent before in output #${f.output}; the builder is misbehaving`);
    }
    await this.realDir(root, dirname(path));
    await this.clear(path, () => false);
    await link(source, path);
    this.files.set(path, file);
    this.written.add(this.outputs[f.output].attrs.dest);
  }

  /**
   * Sets the directories' times once the stream has ended and nothing more lands in them (as
   * fsutil's DiskWriter.Wait), deepest first. Only directories still real from this run (an
   * entry that replaced one, or a parent, dropped it from realDirs), each opened O_NOFOLLOW |
   * O_DIRECTORY and set through the handle: a link put at the path is never followed.
   */
  async finish(): Promise<void> {
    for (const [output, paths] of this.sent) await prune(resolve(this.outputs[output]!.attrs.dest!), paths);
    this.sent.clear();
    const deepestFirst = [...this.dirTimes].sort(([a], [b]) => b.split(sep).length - a.split(sep).length);
    for (const [path, time] of deepestFirst) {
      const made = this.realDirs.get(path);
      if (!made) continue;
      const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ELOOP' || err.code === 'ENOTDIR') return undefined; // no longer a directory: nothing to time
        throw err;
      });
      if (!handle) continue;
      // The same inode: a parent replaced by a link to elsewhere leads to another directory.
      try { if (sameIdentity(await handle.stat(), made)) await handle.utimes(time, time); } finally { await handle.close(); }
    }
    this.dirTimes.clear();
  }

  /** Closes and removes anything half-written (after a failed or cancelled build). */
  async abort(): Promise<void> {
    for (const o of this.open.values()) {
      await o.handle?.close().catch(() => {});
      if (o.tmp) await rm(o.tmp, { force: true });
    }
    this.open.clear();
  }

  /** Files still open when the stream ended: the builder stopped mid-file. */
  get pending(): number {
    return this.open.size + this.layoutIndexes.size;
  }
}
