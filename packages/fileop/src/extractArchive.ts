// ADD's archive unpacking: a tar (plain, gzip, bzip2, xz, zstd — detected by content, not name)
// is extracted into a directory as BuildKit does it: docker's archive.Unpack chrooted into that
// directory. The directory is the root of everything the archive names: absolute names, '..'
// and links resolve inside it ('../x' and '/x' both land at <dir>/x, a symlink to '/' or
// '../..' stays as written but is followed inside <dir>), so nothing lands outside it. Total
// size and entry count are capped so an archive cannot fill the disk (tar bomb).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { isAbsolute, join, posix, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { paxXattrs, realDirChecker, tarExtract } from '@buildyard/oci';
import { applyMeta, ensureDir, lstatOrNull, mkdirOwned, type Owner, ROOT_OWNER } from './destFs.js';
import { FileOpError } from './FileOpError.js';
import { cleanRel, resolveScoped } from './resolveScoped.js';
import { fsTree } from './SourceTree.js';

const execFileAsync = promisify(execFile);

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd';

export interface ExtractLimits {
  /** Maximum sum of entry sizes, in bytes. */
  maxBytes: number;
  /** Maximum number of entries. */
  maxEntries: number;
}

export const DEFAULT_EXTRACT_LIMITS: ExtractLimits = { maxBytes: 32 * 1024 ** 3, maxEntries: 1_000_000 };

export interface ExtractOptions {
  archivePath: string;
  compression: Compression;
  /** Absolute real path of the directory to extract into: the root of every name in the archive. */
  dir: string;
  /** Name shown in errors (the source path or URL). */
  label: string;
  /** Ownership override; default: the ids recorded in the archive. */
  owner?: Owner;
  limits?: Partial<ExtractLimits>;
  /** Sets an entry's SCHILY.xattr.* records on it, after its owner (see CopyOptions.setXattrs); without it none are. */
  setXattrs?: (path: string, xattrs: Map<string, Buffer>) => void;
}

const MAGIC: Array<[Compression, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

/** Memory xz may use to decompress: \`xz -9\` archives need 65 MiB. */
export const XZ_MEMLIMIT_MIB = 256;

/**
 * The decompressor run as a process, and the Debian package that has it. An archive names the
 * window its decompressor must hold: xz honours up to 1.5 GiB unless told a limit, zstd refuses
 * more than 128 MiB by default, bzip2 needs under 4 MiB.
 */
const TOOLS: Record<'bzip2' | 'xz' | 'zstd', { command: string; args: string[]; pkg: string }> = {
  bzip2: { command: 'bzip2', args: [], pkg: 'bzip2' },
  xz: { command: 'xz', args: [`--memlimit-decompress=${XZ_MEMLIMIT_MIB}MiB`], pkg: 'xz-utils' },
  zstd: { command: 'zstd', args: [], pkg: 'zstd' },
};

/**
 * The compression of `path` if it holds a tar archive, else null (ADD then copies it as-is).
 * `label` names the file in errors (the worker's own path is not the user's business).
 */
export async function sniffArchive(path: string, label = path): Promise<Compression | null> {
  const fh = await fsp.open(path, 'r');
  let head: Buffer;
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    head = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const compression = MAGIC.find(([, magic]) => magic.every((b, i) => head[i] === b))?.[0] ?? 'none';
  if (compression === 'none') return isTarHeader(head) ? 'none' : null;
  const d = decompress(path, compression, label);
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of d.stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= 512) break;
    }
    if (size < 512) await d.done();
  } catch (err) {
    // An archive over the memory limit is refused, not copied as if it were no archive.
    if (err instanceof FileOpError && err.code === 'ELIMIT') throw err;
    return null; // not decompressible: an ordinary file that happens to start with the magic
  } finally {
    d.close();
  }
  return isTarHeader(Buffer.concat(chunks)) ? compression : null;
}

function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  if (block.subarray(257, 262).toString('latin1') === 'ustar') return true;
  // v7 tar has no magic: trust the header checksum.
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/g, '').trim();
  if (!/^[0-7]+$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  return sum === parseInt(field, 8);
}

interface Decompressed { stream: Readable; close(): void; done(): Promise<void> }

function decompress(path: string, compression: Compression, label: string): Decompressed {
  const file = createReadStream(path);
  if (compression === 'none') return { stream: file, close: () => file.destroy(), done: async () => {} };
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    file.on('error', (err) => gunzip.destroy(err));
    file.pipe(gunzip);
    return { stream: gunzip, close: () => { file.destroy(); gunzip.destroy(); }, done: async () => {} };
  }
  file.destroy();
  const { command: tool, args, pkg } = TOOLS[compression];
  const child: ChildProcess = spawn(tool, ['-dc', ...args, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
  const exited = new Promise<{ code: number | null; error?: Error }>((resolve) => {
    child.on('error', (error) => resolve({ code: null, error }));
    child.on('close', (code) => resolve({ code }));
  });
  return {
    stream: child.stdout!,
    close: () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); },
    done: async () => {
      const r = await exited;
      if (r.error) throw new FileOpError('EARCHIVE', `cannot run ${tool} to decompress ${label}: ${r.error.message}; install the ${pkg} package`);
      if (r.code !== 0 && /Memory usage limit reached/.test(stderr)) {
        throw new FileOpError('ELIMIT', `ADD ${label}: decompressing it needs more than ${XZ_MEMLIMIT_MIB} MiB of memory (an xz dictionary larger than xz -9 makes); recompress it with a smaller dictionary`);
      }
      // xz names the file it was given: the user knows it by its label.
      if (r.code !== 0) throw new FileOpError('EARCHIVE', `${tool} failed on ${label}: ${(stderr.trim().split('\n')[0] || `exit ${r.code}`).replaceAll(path, label)}`);
    },
  };
}

export interface ExtractResult { files: number; bytes: number }

export async function extractArchive(opts: ExtractOptions): Promise<ExtractResult> {
  const limits = { ...DEFAULT_EXTRACT_LIMITS, ...opts.limits };
  const d = decompress(opts.archivePath, opts.compression, opts.label);
  const extract = tarExtract();
  const piping = pipeline(d.stream, extract).catch((err: unknown) => err);
  const result: ExtractResult = { files: 0, bytes: 0 };
  const dirs: Array<{ abs: string; owner: Owner; mode: number; mtime: Date | null; xattrs: Map<string, Buffer> }> = [];
  const setXattrs = opts.setXattrs ?? (() => undefined);
  // The extraction's root, as BuildKit's chroot: links are followed inside it and nowhere else.
  const tree = fsTree(opts.dir);
  let entries = 0;
  let total = 0;
  const fail = (code: 'ELIMIT' | 'EARCHIVE', msg: string) => new FileOpError(code, `ADD ${opts.label}: ${msg}`);
  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (++entries > limits.maxEntries) throw fail('ELIMIT', `archive has more than ${limits.maxEntries} entries (tar bomb?); raise the extraction limit if it is expected`);
      total += h.size ?? 0;
      if (total > limits.maxBytes) throw fail('ELIMIT', `archive expands to more than ${limits.maxBytes} bytes (tar bomb?); raise the extraction limit if it is expected`);
      // '/a', '../a' and 'x/../a' all name <dir>/a: '..' stops at the root, as in a chroot.
      const rel = cleanRel(h.name);
      if (rel === '') { entry.resume(); continue; }
      const parentRel = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
      const parentAbs = await ensureDir(opts.dir, parentRel, 0o755, opts.owner ?? ROOT_OWNER, `/${parentRel}`);
      const abs = join(parentAbs, posix.basename(rel));
      const owner = opts.owner ?? { uid: h.uid ?? 0, gid: h.gid ?? 0 };
      const mode = (h.mode ?? 0o644) & 0o7777;
      const existing = await lstatOrNull(abs);
      const mtime = h.mtime ?? null;
      // What is there goes, but a directory that the archive names as a directory too (merged);
      // a symlink is replaced, not followed, as docker's Unpack does.
      const merge = h.type === 'directory' && existing?.isDirectory();
      if (existing && !merge) await fsp.rm(abs, { recursive: true, force: true });
      if (h.type === 'directory') {
        if (!merge) await mkdirOwned(abs, 0o755, owner);
        dirs.push({ abs, owner, mode, mtime, xattrs: paxXattrs(h) });
        entry.resume();
        continue;
      }
      switch (h.type) {
        case 'file':
        case 'contiguous-file':
          await pipeline(entry, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
          result.bytes += h.size ?? 0;
          break;
        case 'symlink':
          await fsp.symlink(h.linkname ?? '', abs);
          break;
        case 'link': {
          const target = cleanRel(h.linkname ?? '');
          const targetAbs = join(opts.dir, await resolveScoped(tree, target, false));
          // BuildKit's words (docker's Unpack, chrooted into the destination), then why.
          if (!(await lstatOrNull(targetAbs))) throw fail('EARCHIVE', `Error processing tar file(exit status 1): link /${target} /${rel}: no such file or directory (the archive's hard link "${h.name}" -> "${h.linkname ?? ''}" names no entry extracted before it; the archive is malformed)`);
          await fsp.link(targetAbs, abs);
          break;
        }
        case 'fifo':
        case 'character-device':
        case 'block-device':
          // As BuildKit (and a base image's layers, see the snapshot package's applyLayer): the
          // node is made; a RUN step still cannot open a device, the container's device rules
          // allow only the standard ones.
          await makeNode(abs, h.type, h.devmajor ?? 0, h.devminor ?? 0);
          break;
        default:
          entry.resume();
          continue; // unknown entry types are skipped, as docker's Unpack does
      }
      entry.resume();
      if (h.type !== 'link') {
        await applyMeta(abs, h.type === 'symlink', owner, h.type === 'symlink' ? null : mode, mtime);
        setXattrs(abs, paxXattrs(h));
      }
      result.files++;
    }
    const piped = await piping;
    if (piped) throw piped;
    await d.done();
  } catch (err) {
    d.close();
    extract.destroy();
    if (err instanceof FileOpError) throw err;
    throw fail('EARCHIVE', `cannot extract archive: ${(err as Error).message}; check that it is a valid tar`);
  }
  // A later entry can have put a link in place of a recorded directory or of one of its parents
  // (see realDirChecker): what is no longer there is left alone. Nothing else writes the
  // destination during a file op.
  const onRealDirs = realDirChecker(opts.dir);
  for (const dir of dirs.reverse()) {
    const rel = relative(opts.dir, dir.abs);
    if (isAbsolute(rel) || !(await onRealDirs(rel, true))) continue;
    await applyMeta(dir.abs, false, dir.owner, dir.mode, dir.mtime);
    setXattrs(dir.abs, dir.xattrs);
  }
  return result;
}

/** A fifo or device node; Node has no mknod, the coreutils command makes it. */
async function makeNode(path: string, type: 'fifo' | 'character-device' | 'block-device', major: number, minor: number): Promise<void> {
  const args = type === 'fifo' ? [path, 'p'] : [path, type === 'character-device' ? 'c' : 'b', String(major), String(minor)];
  await execFileAsync('mknod', ['-m', '0600', ...args]);
}
