import { spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';

/** A temp workspace with src/ and dest/ that the caller removes with cleanup() (use in after()). */
export function workspace(): { base: string; src: string; dest: string; cleanup(): void } {
  const base = mkdtempSync(join(tmpdir(), 'fileop-test-'));
  const src = join(base, 'src');
  const dest = join(base, 'dest');
  spawnSync('mkdir', ['-p', src, dest]);
  return { base, src, dest, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

/** Writes files (string content), dirs (trailing '/') and symlinks ({ link }) under root. */
export async function populate(root: string, spec: Record<string, string | { link: string } | { mode: number; content: string }>): Promise<void> {
  for (const [rel, v] of Object.entries(spec)) {
    const abs = join(root, rel);
    if (rel.endsWith('/')) { await fsp.mkdir(abs, { recursive: true }); continue; }
    await fsp.mkdir(join(abs, '..'), { recursive: true });
    if (typeof v === 'string') await fsp.writeFile(abs, v);
    else if ('link' in v) await fsp.symlink(v.link, abs);
    else { await fsp.writeFile(abs, v.content); await fsp.chmod(abs, v.mode); }
  }
}

export interface TarItem { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'fifo' | 'character-device' | 'block-device'; content?: string; linkname?: string; mode?: number; uid?: number; gid?: number; mtime?: Date; size?: number; devmajor?: number; devminor?: number }

export async function makeTar(items: TarItem[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((resolve, reject) => { pack.on('end', resolve); pack.on('error', reject); });
  for (const it of items) {
    const type = it.type ?? 'file';
    const header = { name: it.name, type, mode: it.mode ?? (type === 'directory' ? 0o755 : 0o644), uid: it.uid ?? 0, gid: it.gid ?? 0, mtime: it.mtime ?? new Date('2020-01-02T03:04:05Z'), linkname: it.linkname, devmajor: it.devmajor, devminor: it.devminor };
    if (type === 'file') await new Promise<void>((res, rej) => pack.entry(header, it.content ?? '', (e) => (e ? rej(e) : res())));
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

export function compress(data: Buffer, kind: 'none' | 'gzip' | 'bzip2' | 'xz' | 'zstd'): Buffer {
  if (kind === 'none') return data;
  if (kind === 'gzip') return gzipSync(data);
  const r = spawnSync(kind, kind === 'zstd' ? ['-q', '-c'] : ['-c'], { input: data, maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${kind} failed: ${r.stderr}`);
  return r.stdout;
}
