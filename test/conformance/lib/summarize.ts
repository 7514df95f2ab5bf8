// Reduces an exported OCI layout to what the conformance suite compares: the flattened
// filesystem where it differs from the base image, the image config fields a user sees, the
// history after the base image's, the layer count and the last layer's whiteouts.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import type { ConfigSummary, FileRecord, Result } from './types.js';

interface Descriptor { mediaType: string; digest: string; size: number; platform?: { os: string; architecture: string; variant?: string } }

export interface LoadedImage {
  config: Record<string, unknown> & { config?: Record<string, unknown>; history?: { created_by?: string; empty_layer?: boolean; created?: string; comment?: string; author?: string }[]; rootfs?: { diff_ids: string[] } };
  layers: Descriptor[];
  dir: string;
}

async function blobJson(dir: string, digest: string): Promise<any> {
  return JSON.parse(await readFile(join(dir, 'blobs', digest.replace(':', '/')), 'utf8'));
}

/** The image for `platform` (os/arch) in an OCI layout, following nested indexes. */
export async function loadImage(dir: string, platform: string): Promise<LoadedImage> {
  const [os, arch] = platform.split('/');
  let doc = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8'));
  for (let depth = 0; depth < 4; depth++) {
    if (!Array.isArray(doc.manifests)) break;
    const list = doc.manifests as Descriptor[];
    const pick = list.find((m) => m.platform?.os === os && m.platform?.architecture === arch) ?? (list.length === 1 ? list[0] : undefined);
    if (!pick) throw new Error(`no ${platform} image in ${dir}`);
    doc = await blobJson(dir, pick.digest);
  }
  if (!doc.config) throw new Error(`no image manifest in ${dir}`);
  return { config: await blobJson(dir, doc.config.digest), layers: doc.layers ?? [], dir };
}

/**
 * Times from before this run are ones a case fixed (the context's files get CONTEXT_MTIME, the
 * base image's are 0, tar entries, Last-Modified and SOURCE_DATE_EPOCH are chosen by the case);
 * later ones are the build's own clock, which differs between runs and builders, so they are not
 * compared. The line is the run's start (a minute early, for second-truncated times), not "a day
 * ago": a time a builder took from a file of its machine (a worker's /usr, made hours before)
 * is neither, and must show as a difference (it hid a layer applier reading outside its layers).
 */
const STABLE_BEFORE_SECONDS = Math.floor(performance.timeOrigin / 1000) - 60;

/** `seconds` when it is a time a case fixed, else undefined. */
export function stableTime(seconds: number): number | undefined {
  return seconds < STABLE_BEFORE_SECONDS ? seconds : undefined;
}

function stableIsoTime(iso: string | undefined): string | undefined {
  const ms = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(ms) && stableTime(ms / 1000) !== undefined ? new Date(ms).toISOString() : undefined;
}

const TYPES: Record<string, FileRecord['type']> = { file: 'file', directory: 'dir', symlink: 'symlink', link: 'hardlink', fifo: 'fifo', 'character-device': 'char', 'block-device': 'block' };

function clean(name: string): string {
  const p = posix.normalize('/' + name).replace(/\/+$/, '');
  return p === '' ? '/' : p;
}

/** Applies one layer onto `fs`; returns the layer's whiteout paths. */
async function applyLayer(fs: Map<string, FileRecord>, path: string, mediaType: string): Promise<string[]> {
  const whiteouts: string[] = [];
  const ex = extract();
  ex.on('entry', (h: Header, stream, next) => {
    const full = clean(h.name);
    const base = posix.basename(full);
    const dir = posix.dirname(full);
    const finish = (rec?: FileRecord) => {
      if (rec) {
        const old = fs.get(full);
        // A directory entry over a directory keeps what is below it.
        if (!(old?.type === 'dir' && rec.type === 'dir')) removeTree(fs, full);
        fs.set(full, rec);
        for (let d = posix.dirname(full); d !== '/' && !fs.has(d); d = posix.dirname(d)) fs.set(d, { path: d, type: 'dir', implied: true });
      }
      next();
    };
    if (base === '.wh..wh..opq') {
      whiteouts.push(full);
      for (const p of [...fs.keys()]) if (p.startsWith(dir === '/' ? '/' : dir + '/') && p !== dir) fs.delete(p);
      stream.resume();
      stream.on('end', () => finish());
      return;
    }
    if (base.startsWith('.wh.')) {
      const target = posix.join(dir, base.slice(4));
      whiteouts.push(target);
      removeTree(fs, target);
      stream.resume();
      stream.on('end', () => finish());
      return;
    }
    const rec: FileRecord = { path: full, type: TYPES[h.type ?? 'file'] ?? 'file', mode: ((h.mode ?? 0) & 0o7777).toString(8), uid: h.uid ?? 0, gid: h.gid ?? 0 };
    if (rec.type === 'symlink' || rec.type === 'hardlink') rec.linkname = rec.type === 'hardlink' ? clean(h.linkname ?? '') : h.linkname ?? '';
    const pax = (h as { pax?: Record<string, string> }).pax ?? {};
    const xattrs = Object.fromEntries(Object.entries(pax).filter(([k]) => k.startsWith('SCHILY.xattr.')).map(([k, v]) => [k.slice(13), v]));
    if (Object.keys(xattrs).length > 0) rec.xattrs = xattrs;
    const mtime = h.mtime ? stableTime(Math.floor(h.mtime.getTime() / 1000)) : undefined;
    if (mtime !== undefined) rec.mtime = mtime;
    if (rec.type === 'file') {
      const hash = createHash('sha256');
      let size = 0;
      stream.on('data', (c: unknown) => { hash.update(c as Buffer); size += (c as Buffer).length; });
      stream.on('end', () => { rec.content = `${hash.digest('hex').slice(0, 16)}:${size}`; finish(rec); });
    } else {
      stream.resume();
      stream.on('end', () => finish(rec));
    }
  });
  const source = createReadStream(path);
  if (mediaType.endsWith('gzip')) await pipeline(source, createGunzip(), ex);
  else await pipeline(source, ex);
  return whiteouts;
}

function removeTree(fs: Map<string, FileRecord>, p: string): void {
  fs.delete(p);
  for (const k of [...fs.keys()]) if (k.startsWith(p + '/')) fs.delete(k);
}

/**
 * The tree of `img`'s first `count` layers. `from` is the tree of its first `from.layers` layers,
 * when known: those are not read again (the records are shared, never changed: a layer replaces
 * a path's record, it does not edit it).
 */
export async function flatten(img: LoadedImage, count = img.layers.length, from?: { fs: Map<string, FileRecord>; layers: number }): Promise<{ fs: Map<string, FileRecord>; lastWhiteouts: string[] }> {
  const fs = new Map<string, FileRecord>(from?.fs);
  let lastWhiteouts: string[] = [];
  for (const layer of img.layers.slice(from?.layers ?? 0, count)) {
    lastWhiteouts = await applyLayer(fs, join(img.dir, 'blobs', layer.digest.replace(':', '/')), layer.mediaType);
  }
  return { fs, lastWhiteouts };
}

function sortedKeys(o: unknown): string[] | undefined {
  return o && typeof o === 'object' ? Object.keys(o).sort() : undefined;
}

const SUMMARIZED_CONFIG = new Set(['Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'User', 'ExposedPorts', 'Volumes', 'Labels', 'Healthcheck', 'StopSignal', 'OnBuild', 'Shell', 'ArgsEscaped']);
// moby.buildkit.buildinfo.v1: v0.11.6's build info, which current BuildKit no longer writes
// (removed in v0.12 for provenance attestations).
const SUMMARIZED_TOP = new Set(['config', 'created', 'author', 'os', 'architecture', 'variant', 'rootfs', 'history', 'moby.buildkit.buildinfo.v1']);

export function configSummary(config: LoadedImage['config']): ConfigSummary {
  const c = (config.config ?? {}) as Record<string, any>;
  const out: ConfigSummary = {};
  const copy = <K extends keyof ConfigSummary>(k: K, v: ConfigSummary[K] | undefined) => { if (v !== undefined && v !== '' && !(v === false && k === 'ArgsEscaped')) out[k] = v; };
  copy('Env', c.Env);
  copy('Cmd', c.Cmd);
  copy('Entrypoint', c.Entrypoint);
  copy('WorkingDir', c.WorkingDir);
  copy('User', c.User);
  copy('ExposedPorts', sortedKeys(c.ExposedPorts));
  copy('Volumes', sortedKeys(c.Volumes));
  copy('Labels', c.Labels && Object.keys(c.Labels).length > 0 ? Object.fromEntries(Object.entries(c.Labels as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : 1))) : undefined);
  copy('Healthcheck', c.Healthcheck);
  copy('StopSignal', c.StopSignal);
  copy('OnBuild', c.OnBuild && c.OnBuild.length > 0 ? c.OnBuild : undefined);
  copy('Shell', c.Shell);
  copy('ArgsEscaped', c.ArgsEscaped);
  copy('author', config.author as string | undefined);
  copy('platform', [config.os, config.architecture, config.variant].filter(Boolean).join('/'));
  copy('created', stableIsoTime(config.created as string | undefined));
  // Whatever else either builder writes into the config, so nothing goes unseen.
  const other = Object.fromEntries([
    ...Object.entries(c).filter(([k]) => !SUMMARIZED_CONFIG.has(k)).map(([k, v]) => [`config.${k}`, v]),
    ...Object.entries(config).filter(([k]) => !SUMMARIZED_TOP.has(k)),
  ].sort(([a], [b]) => (a < b ? -1 : 1)));
  copy('other', Object.keys(other).length > 0 ? other : undefined);
  return out;
}

function sameRecord(a: FileRecord, b: FileRecord): boolean {
  return JSON.stringify({ ...a, implied: undefined }) === JSON.stringify({ ...b, implied: undefined });
}

/** The base image's tree, read once per base (every case compares against it). */
const baseTrees = new WeakMap<LoadedImage, Promise<Map<string, FileRecord>>>();
function baseTree(base: LoadedImage): Promise<Map<string, FileRecord>> {
  let tree = baseTrees.get(base);
  if (!tree) {
    tree = flatten(base).then((r) => r.fs);
    baseTrees.set(base, tree);
  }
  return tree;
}

/** Summarises `img` relative to `base` (the busybox image), which it may or may not start from. */
export async function summarize(img: LoadedImage, base: LoadedImage): Promise<Result> {
  const ids = img.config.rootfs?.diff_ids ?? [];
  const baseIds = base.config.rootfs?.diff_ids ?? [];
  const fromBase = baseIds.length > 0 && baseIds.every((d, i) => ids[i] === d);
  const baseLayers = fromBase ? baseIds.length : 0;
  const baseFs = fromBase ? await baseTree(base) : new Map<string, FileRecord>();
  // Base layers that are the base image's own blobs (same digest: the same bytes) flatten to the
  // base's tree; any other blob is read, whatever diff_id the config claims for it.
  const sameBlobs = fromBase && base.layers.length === baseLayers && base.layers.every((l, i) => img.layers[i]?.digest === l.digest);
  const { fs, lastWhiteouts } = await flatten(img, img.layers.length, sameBlobs ? { fs: baseFs, layers: baseLayers } : undefined);
  const files: FileRecord[] = [];
  for (const [p, rec] of fs) {
    const old = baseFs.get(p);
    if (!old || !sameRecord(old, rec)) files.push(rec);
  }
  for (const p of baseFs.keys()) if (!fs.has(p)) files.push({ path: p, type: 'deleted' });
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const history = (img.config.history ?? []).slice(fromBase ? (base.config.history ?? []).length : 0)
    .map((h) => {
      const created = stableIsoTime(h.created);
      return { created_by: h.created_by ?? '', ...(h.empty_layer ? { empty_layer: true } : {}), ...(created ? { created } : {}), ...(h.comment !== undefined ? { comment: h.comment } : {}), ...(h.author !== undefined ? { author: h.author } : {}) };
    });
  return {
    ok: true,
    layers: img.layers.length - baseLayers,
    config: configSummary(img.config),
    history,
    files,
    whiteouts: img.layers.length > baseLayers ? lastWhiteouts.sort() : [],
  };
}
