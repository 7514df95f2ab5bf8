// Writes the files of local-type outputs (type=local/tar/oci/docker) as the server streams them.
import { mkdir, open, rename, rm, symlink, chmod, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Writable } from 'node:stream';
import type { ExportedFile, KeyValueSpec } from '@buildyard/proto';
import { ClientError } from './ClientError.js';

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

interface OpenFile {
  handle?: FileHandle;
  /** Single-file outputs are written to a temp name and renamed when complete. */
  tmp?: string;
  final: string;
  mode: number;
}

export class ExportedFileWriter {
  private readonly open = new Map<string, OpenFile>();
  /** Destinations written, for the summary. */
  readonly written = new Set<string>();

  constructor(private readonly outputs: readonly KeyValueSpec[], private readonly stdout: Writable = process.stdout) {}

  private target(f: ExportedFile): { spec: KeyValueSpec; path: string; single: boolean } {
    const spec = this.outputs[f.output];
    if (!spec) throw new ClientError(`the builder sent a file for output #${f.output}, but only ${this.outputs.length} were requested; the builder is misbehaving`);
    const dest = spec.attrs.dest;
    if (!dest) throw new ClientError(`the builder sent files for output #${f.output} (type=${spec.type}), which has no dest=; add dest= to the --output`);
    if (spec.type !== 'local') return { spec, path: dest, single: true };
    const root = resolve(dest);
    const path = resolve(root, f.path);
    if (f.path.startsWith('/') || (path !== root && !path.startsWith(root + sep))) {
      throw new ClientError(`the builder sent a file path "${f.path}" outside ${root}; refusing to write it`);
    }
    return { spec, path, single: false };
  }

  async write(f: ExportedFile): Promise<void> {
    const { path, single } = this.target(f);
    if (single && path === '-') {
      if (f.data.length > 0 && !this.stdout.write(f.data)) await new Promise((r) => this.stdout.once('drain', r));
      return;
    }
    const key = `${f.output}\0${path}`;
    const type = f.mode & S_IFMT;
    if (!single && (type === S_IFDIR || (f.path === '' && f.data.length === 0 && !f.linkTarget))) {
      await mkdir(path, { recursive: true });
      if (type === S_IFDIR) await chmod(path, f.mode & 0o7777);
      this.written.add(this.outputs[f.output].attrs.dest);
      return;
    }
    if (!single && (type === S_IFLNK || f.linkTarget)) {
      await mkdir(dirname(path), { recursive: true });
      await rm(path, { force: true });
      await symlink(f.linkTarget, path);
      this.written.add(this.outputs[f.output].attrs.dest);
      return;
    }
    let o = this.open.get(key);
    if (!o) {
      await mkdir(dirname(path), { recursive: true });
      const tmp = single ? join(dirname(path), `.${Date.now()}.${process.pid}.partial`) : undefined;
      const mode = single ? 0o644 : (f.mode & 0o7777) || 0o644;
      o = { final: path, mode, tmp, handle: await open(tmp ?? path, 'w', 0o600) };
      this.open.set(key, o);
    }
    if (f.data.length > 0) await o.handle!.write(f.data);
    if (f.last) {
      await o.handle!.close();
      await chmod(o.tmp ?? o.final, o.mode);
      if (o.tmp) await rename(o.tmp, o.final);
      this.open.delete(key);
      this.written.add(this.outputs[f.output].attrs.dest);
    }
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
    return this.open.size;
  }
}
