import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import tarStream from 'tar-stream';

/** A temp dir that is removed (after unmounting anything left under it) by the returned cleanup. */
export async function tempDir(prefix: string): Promise<{ path: string; cleanup(): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `buildyard-${prefix}-`));
  return {
    path,
    async cleanup() {
      const mounts = execFileSync('awk', ['{print $5}', '/proc/self/mountinfo'], { encoding: 'utf8' })
        .split('\n').filter((m) => m.startsWith(`${path}/`)).reverse();
      for (const m of mounts) {
        try { execFileSync('umount', ['-l', m]); } catch { /* already gone */ }
      }
      await rm(path, { recursive: true, force: true });
    },
  };
}

export interface RawEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  data?: string;
  linkname?: string;
  mode?: number;
  /** PAX xattrs (SCHILY.xattr.NAME), as a layer carries them. */
  xattrs?: Record<string, string>;
}

/** A tar built with tar-stream's pack, which (unlike our writer) allows malformed names. */
export async function rawTar(entries: RawEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const pax = e.xattrs && Object.fromEntries(Object.entries(e.xattrs).map(([k, v]) => [`SCHILY.xattr.${k}`, v]));
    const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), linkname: e.linkname, mtime: new Date(1_600_000_000_000), ...(pax ? { pax } : {}) };
    if (type === 'file') pack.entry(header, Buffer.from(e.data ?? ''));
    else pack.entry(header);
  }
  pack.finalize();
  return buffer(pack);
}

export function streamOf(data: Buffer): Readable {
  return Readable.from([data]);
}
