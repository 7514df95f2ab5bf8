// ADD's archive unpacking: a tar (plain, gzip, bzip2, xz — detected by content, not name) is
// extracted into a directory of a rootfs. Entries may not leave that directory: absolute names,
// '..' components, and paths through symlinks pointing elsewhere are refused, and total size
// and entry count are capped so an archive cannot fill the disk (tar bomb).
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, createWriteStream, promises as fsp } from 'node:fs';
import { join, posix, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { ModeTransform } from './chmodSpec.js';
import { applyMeta, ensureDir, lstatOrNull, mkdirOwned, type Owner, ROOT_OWNER } from './destFs.js';
import { FileOpError } from './FileOpError.js';
import { cleanRel, resolveScoped, splitPath } from './resolveScoped.js';
import { fsTree } from './SourceTree.js';

export type Compression = 'none' | 'gzip' | 'bzip2' | 'xz';

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
  /** The rootfs; symlinks are resolved inside it. */
  destRoot: string;
  /** Absolute real path of the directory (inside destRoot) to extract into. */
  dir: string;
  /** Name shown in errors (the source path or URL). */
  label: string;
  /** Ownership override; default: the ids recorded in the archive. */
  owner?: Owner;
  chmod?: ModeTransform;
  limits?: Partial<ExtractLimits>;
}

const MAGIC: Array<[Compression, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['bzip2', [0x42, 0x5a, 0x68]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
];

/** The compression of `path` if it holds a tar archive, else null (ADD then copies it as-is). */
export async function sniffArchive(path: string): Promise<Compression | null> {
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
  const d = decompress(path, compression);
  try {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of d.stream) {
      chunks.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= 512) break;
    }
    return isTarHeader(Buffer.concat(chunks)) ? compression : null;
  } catch {
    return null; // not decompressible: an ordinary file that happens to start with the magic
  } finally {
    d.close();
  }
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

function decompress(path: string, compression: Compression): Decompressed {
  const file = createReadStream(path);
  if (compression === 'none') return { stream: file, close: () => file.destroy(), done: async () => {} };
  if (compression === 'gzip') {
    const gunzip = createGunzip();
    file.on('error', (err) => gunzip.destroy(err));
    file.pipe(gunzip);
    return { stream: gunzip, close: () => { file.destroy(); gunzip.destroy(); }, done: async () => {} };
  }
  file.destroy();
  const tool = compression === 'bzip2' ? 'bzip2' : 'xz';
  const child: ChildProcess = spawn(tool, ['-dc', path], { stdio: ['ignore', 'pipe', 'pipe'] });
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
      if (r.error) throw new FileOpError('EARCHIVE', `cannot run ${tool} to decompress ${path}: ${r.error.message}; install the ${tool === 'xz' ? 'xz-utils' : 'bzip2'} package`);
      if (r.code !== 0) throw new FileOpError('EARCHIVE', `${tool} failed on ${path}: ${stderr.trim().split('\n')[0] || `exit ${r.code}`}`);
    },
  };
}

export interface ExtractResult { files: number; bytes: number }

export async function extractArchive(opts: ExtractOptions): Promise<ExtractResult> {
  const limits = { ...DEFAULT_EXTRACT_LIMITS, ...opts.limits };
  const d = decompress(opts.archivePath, opts.compression);
  const extract = tar.extract();
  const piping = pipeline(d.stream, extract).catch((err: unknown) => err);
  const result: ExtractResult = { files: 0, bytes: 0 };
  const dirs: Array<{ abs: string; owner: Owner; mode: number; mtime: Date | null }> = [];
  const dirRel = relative(opts.destRoot, opts.dir);
  const tree = fsTree(opts.destRoot);
  let entries = 0;
  let total = 0;
  const fail = (code: 'EESCAPE' | 'ELIMIT' | 'EARCHIVE', msg: string) => new FileOpError(code, `ADD ${opts.label}: ${msg}`);
  const inside = (abs: string) => abs === opts.dir || abs.startsWith(opts.dir.endsWith('/') ? opts.dir : opts.dir + '/');
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const rawName = h.name;
      if (++entries > limits.maxEntries) throw fail('ELIMIT', `archive has more than ${limits.maxEntries} entries (tar bomb?); raise the extraction limit if it is expected`);
      total += h.size ?? 0;
      if (total > limits.maxBytes) throw fail('ELIMIT', `archive expands to more than ${limits.maxBytes} bytes (tar bomb?); raise the extraction limit if it is expected`);
      if (rawName.startsWith('/')) throw fail('EESCAPE', `archive entry "${rawName}" has an absolute path; refusing to extract it`);
      const parts = splitPath(rawName);
      if (parts.includes('..')) throw fail('EESCAPE', `archive entry "${rawName}" contains '..'; refusing to extract outside the destination`);
      const rel = parts.join('/');
      if (rel === '') { entry.resume(); continue; }
      // Resolve the parent through existing symlinks (scoped to the rootfs) before creating anything.
      const parentRel = posix.dirname(rel) === '.' ? '' : posix.dirname(rel);
      const parentReal = await resolveScoped(tree, posix.join(dirRel, parentRel), true);
      if (!inside(join(opts.destRoot, parentReal))) throw fail('EESCAPE', `archive entry "${rawName}" leads outside the destination through a symlink; refusing to extract it`);
      const owner = opts.owner ?? { uid: h.uid ?? 0, gid: h.gid ?? 0 };
      const rawMode = (h.mode ?? 0o644) & 0o7777;
      const mode = opts.chmod ? opts.chmod(rawMode, h.type === 'directory') : rawMode;
      const parentAbs = await ensureDir(opts.destRoot, parentReal, 0o755, opts.owner ?? ROOT_OWNER, `/${parentReal}`);
      const abs = join(parentAbs, posix.basename(rel));
      const existing = await lstatOrNull(abs);
      const mtime = h.mtime ?? null;
      switch (h.type) {
        case 'directory': {
          let real = abs;
          if (existing?.isSymbolicLink()) {
            real = join(opts.destRoot, await resolveScoped(tree, relative(opts.destRoot, abs), true));
            if (!inside(real)) throw fail('EESCAPE', `archive entry "${rawName}" leads outside the destination through a symlink; refusing to extract it`);
          }
          const st = real === abs ? existing : await lstatOrNull(real);
          if (st && !st.isDirectory()) await fsp.rm(real, { force: true });
          if (!st || !st.isDirectory()) await mkdirOwned(real, 0o755, owner);
          dirs.push({ abs: real, owner, mode, mtime });
          entry.resume();
          break;
        }
        case 'file':
        case 'contiguous-file': {
          if (existing) await fsp.rm(abs, { recursive: true, force: true });
          await pipeline(entry, createWriteStream(abs, { flags: 'wx', mode: 0o600 }));
          await applyMeta(abs, false, owner, mode, mtime);
          result.files++;
          result.bytes += h.size ?? 0;
          break;
        }
        case 'symlink': {
          const target = h.linkname ?? '';
          if (!target.startsWith('/') && cleanEscapes(posix.join(parentRel, target))) {
            throw fail('EESCAPE', `archive symlink "${rawName}" -> "${target}" points outside the destination; refusing to extract it`);
          }
          if (existing) await fsp.rm(abs, { recursive: true, force: true });
          await fsp.symlink(target, abs);
          await applyMeta(abs, true, owner, null, mtime);
          result.files++;
          entry.resume();
          break;
        }
        case 'link': {
          const target = h.linkname ?? '';
          const targetParts = splitPath(target);
          if (target.startsWith('/') || targetParts.includes('..')) throw fail('EESCAPE', `archive hardlink "${rawName}" -> "${target}" points outside the destination; refusing to extract it`);
          const targetReal = join(opts.destRoot, await resolveScoped(tree, posix.join(dirRel, cleanRel(target)), false));
          if (!inside(targetReal) || !(await lstatOrNull(targetReal))) throw fail('EESCAPE', `archive hardlink "${rawName}" -> "${target}" does not name an entry extracted before it; the archive is malformed`);
          if (existing) await fsp.rm(abs, { recursive: true, force: true });
          await fsp.link(targetReal, abs);
          result.files++;
          entry.resume();
          break;
        }
        default:
          // Devices and fifos need mknod, which an unprivileged rootfs copy should not create.
          entry.resume();
      }
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
  for (const dir of dirs.reverse()) await applyMeta(dir.abs, false, dir.owner, dir.mode, dir.mtime);
  return result;
}

/** True if a relative path climbs above its start after lexical cleaning. */
function cleanEscapes(p: string): boolean {
  let depth = 0;
  for (const c of splitPath(p)) {
    if (c === '..') { if (--depth < 0) return true; } else depth++;
  }
  return false;
}
