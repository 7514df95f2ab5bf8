import { createHash } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RetriesExhaustedError, withRetries, type Attempt } from '@buildyard/oci';
import { parseChmod } from './chmodSpec.js';
import { applyMeta, clearForFile, ensureDir, type Owner, resolveDest, ROOT_OWNER, showPath } from './destFs.js';
import { extractArchive, sniffArchive, type ExtractLimits } from './extractArchive.js';
import { FileOpError } from './FileOpError.js';
import { AddressRefusedError, httpGet, HttpTimeoutError, type HttpLimits } from './httpGet.js';
import { cleanRel } from './resolveScoped.js';

export interface AddUrlOptions {
  /** http:// or https:// URL. */
  url: string;
  destRoot: string;
  /** Absolute path inside destRoot; a trailing '/' means "into this directory, named after the URL". */
  dest: string;
  /** ADD --checksum, e.g. "sha256:<hex>" (sha384/sha512 also accepted). */
  checksum?: string;
  owner?: Owner;
  chmod?: string;
  /** ADD --unpack=true: extract a tar archive instead of storing the file. Off by default for URLs. */
  unpack?: boolean;
  /** Whole-download timeout (default 300 s). */
  timeoutMs?: number;
  /** Time allowed to open the connection, TLS included (default 30 s). */
  connectTimeoutMs?: number;
  /** Longest silence allowed, waiting for the answer or within the body (default 60 s). */
  idleTimeoutMs?: number;
  /** The build's: aborting it ends the download at once, and no retry follows. */
  signal?: AbortSignal;
  /** Where the download is written before it is placed (default the OS temp dir). */
  tmpDir?: string;
  /** Retries after network errors and 5xx/429 answers (default 2). */
  retries?: number;
  /** Most bytes the body may have (default 10 GiB): a server streaming without end fills no disk. */
  maxBytes?: number;
  extractLimits?: Partial<ExtractLimits>;
  /** With `unpack`: sets each entry's xattrs (see CopyOptions.setXattrs). */
  setXattrs?: (path: string, xattrs: Map<string, Buffer>) => void;
  /** The build's network policy, asked for the address of every hop before connecting to it:
   *  why the address is refused (a setting's name), or undefined to allow it. */
  refuseAddress?: (address: string) => string | undefined;
  /** Dockerfile line of the ADD, named in a refusal. */
  line?: number;
  /** The body already downloaded while revalidating the URL (see revalidateUrl): placed instead
   *  of fetching again. Ignored with a checksum, whose download is verified here. */
  fetched?: FetchedUrl;
}

/** A URL's body downloaded to a file. */
export interface FetchedUrl {
  file: string;
  /** `sha256:<hex>` of the body. */
  digest: string;
  bytes: number;
  /** The response's Last-Modified, when it had a valid one. */
  lastModified: Date | null;
}

export interface AddUrlResult {
  /** Absolute path written (the file, or the extraction directory). */
  path: string;
  bytes: number;
  /** Digest of the downloaded bytes, `sha256:<hex>`. */
  digest: string;
  /** The response's Last-Modified (the file's mtime), when it had a valid one. */
  lastModified: Date | null;
}

/** ADD <url> <dest>: download, verify, place (downloaded files are 0600 like Docker's). */
export async function addUrl(opts: AddUrlOptions): Promise<AddUrlResult> {
  const url = parseAddUrl(opts.url);
  if (!opts.dest.startsWith('/')) throw new FileOpError('EBADARG', `ADD destination "${opts.dest}" must be absolute (resolve it against WORKDIR first)`);
  const expected = opts.checksum ? parseChecksum(opts.checksum, opts.url) : null;
  const chmod = opts.chmod !== undefined ? parseChmod(opts.chmod) : null;
  const owner = opts.owner ?? ROOT_OWNER;
  const tmp = await fsp.mkdtemp(join(opts.tmpDir ?? tmpdir(), 'buildyard-add-'));
  try {
    let got: FetchedUrl;
    if (opts.fetched && !expected) {
      got = opts.fetched;
    } else {
      const file = join(tmp, 'download');
      const answer = await downloadUrl(url, file, httpLimitsOf(opts), { retries: opts.retries, algorithm: expected?.algorithm, line: opts.line });
      if ('notModified' in answer) throw new FileOpError('EFETCH', `ADD ${brief(opts.url)}: the server answered 304 Not Modified to a request without validators`);
      if (expected && answer.hex !== expected.hex) {
        // BuildKit's words (the served digest, then --checksum's), then which is which.
        throw new FileOpError('ECHECKSUM', `ADD ${brief(opts.url)}: digest mismatch ${expected.algorithm}:${answer.hex}: ${expected.algorithm}:${expected.hex}; the file served has the first, --checksum gives the second: fix --checksum or the URL`);
      }
      const digest = expected?.algorithm === 'sha256' || !expected ? `sha256:${answer.hex}` : `sha256:${createHash('sha256').update(await fsp.readFile(file)).digest('hex')}`;
      got = { file, digest, bytes: answer.bytes, lastModified: answer.lastModified };
    }
    const destRel = cleanRel(opts.dest);
    if (opts.unpack) {
      const compression = await sniffArchive(got.file, opts.url);
      if (compression) {
        const dir = await ensureDir(opts.destRoot, destRel, 0o755, owner, showPath(destRel));
        await extractArchive({ archivePath: got.file, compression, dir, label: opts.url, owner: opts.owner, limits: opts.extractLimits, setXattrs: opts.setXattrs });
        return { path: dir, bytes: got.bytes, digest: got.digest, lastModified: got.lastModified };
      }
    }
    // Named as a directory or one already, else the file itself: through a final symlink (see resolveDest).
    const real = opts.dest.endsWith('/') || destRel === '' ? null : await resolveDest(opts.destRoot, destRel);
    const targetRel = !real || real.isDir ? posix.join(destRel, urlFileName(url)) : real.rel;
    const parent = await ensureDir(opts.destRoot, posix.dirname(targetRel), 0o755, owner, showPath(posix.dirname(targetRel)));
    const target = join(parent, posix.basename(targetRel));
    await clearForFile(target, showPath(targetRel));
    await fsp.copyFile(got.file, target);
    // No Last-Modified: the Unix epoch, as BuildKit's HTTP source, so the layer is the same
    // whichever worker downloads it, whenever.
    await applyMeta(target, false, owner, chmod ? chmod(0o600, false) : 0o600, got.lastModified ?? new Date(0));
    return { path: target, bytes: got.bytes, digest: got.digest, lastModified: got.lastModified };
  } finally {
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}

export function parseAddUrl(text: string): URL {
  let url: URL;
  try { url = new URL(text); } catch { throw new FileOpError('EBADARG', `ADD ${brief(text)}: not a valid URL; use an absolute http(s):// URL`); }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new FileOpError('EBADARG', `ADD ${brief(text)}: only http and https URLs can be downloaded`);
  return url;
}

/** The limits of a download from the options of an ADD (defaults: 300 s whole, 30 s connect, 60 s idle). */
export function httpLimitsOf(opts: Pick<AddUrlOptions, 'timeoutMs' | 'connectTimeoutMs' | 'idleTimeoutMs' | 'signal' | 'refuseAddress' | 'maxBytes'>): HttpLimits {
  return {
    timeoutMs: opts.timeoutMs ?? 300_000, connectTimeoutMs: opts.connectTimeoutMs ?? 30_000, idleTimeoutMs: opts.idleTimeoutMs ?? 60_000, signal: opts.signal,
    refuse: opts.refuseAddress, maxBytes: opts.maxBytes ?? 10 * 1024 ** 3,
  };
}

function parseChecksum(checksum: string, url: string): { algorithm: string; hex: string } {
  const m = /^(sha256|sha384|sha512):([0-9a-f]+)$/.exec(checksum.trim());
  const len: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
  if (!m || m[2].length !== len[m[1]]) throw new FileOpError('EBADARG', `ADD ${brief(url)}: invalid --checksum "${brief(checksum)}"; use sha256:<64 hex digits>`);
  return { algorithm: m[1], hex: m[2] };
}

/** A 200 answer, stored in the file asked for. */
export interface Downloaded { hex: string; bytes: number; lastModified: Date | null; etag: string | null }
/** A 304 answer to a conditional GET; `etag` is the one it names (absent from some servers). */
export interface NotModified { notModified: true; etag: string | null }

export interface DownloadOptions {
  /** Retries after network errors and 5xx/429 answers (default 2). */
  retries?: number;
  /** Hash of `hex` (default sha256). */
  algorithm?: string;
  /** Dockerfile line of the ADD, named in a refusal. */
  line?: number;
  /** Request headers, e.g. If-None-Match. */
  headers?: Record<string, string>;
}

/** An answer retrying cannot change (a 4xx): ends the attempts at once. */
class FinalAnswer extends Error {}

/** GETs `url` into `file` with retries; a policy refusal or a 4xx ends it at once. */
export async function downloadUrl(url: URL, file: string, limits: HttpLimits, opts: DownloadOptions = {}): Promise<Downloaded | NotModified> {
  const retries = opts.retries ?? 2;
  const failed = (why: string) => {
    const tries = retries > 0 ? ` (${retries + 1} attempts)` : '';
    return new FileOpError('EFETCH', `ADD ${brief(url.href)}: download failed${tries}: ${why}; check the URL is reachable from the builder`);
  };
  // Every case worth another attempt is answered with `retry`; anything thrown ends the download.
  const attempt = async (): Promise<Attempt<Downloaded | NotModified>> => {
    let got: Awaited<ReturnType<typeof httpGet>>;
    try {
      got = await httpGet(url, limits, opts.headers);
    } catch (err) {
      limits.signal?.throwIfAborted();
      // A policy answer, not a network failure: retrying cannot change it.
      if (err instanceof AddressRefusedError) {
        const hop = err.redirectedTo ? ` redirected to ${brief(err.redirectedTo.href)}:` : '';
        throw new FileOpError('EREFUSED', `ADD ${brief(url.href)}${opts.line ? ` at line ${opts.line}` : ''}:${hop} ${err.message}`);
      }
      return { retry: describeFetchError(err) };
    }
    const { res } = got;
    try {
      const status = res.statusCode ?? 0;
      const etag = etagOf(res.headers.etag);
      if (status === 304) {
        res.resume();
        return { value: { notModified: true, etag } };
      }
      if (status < 200 || status >= 300) {
        res.resume();
        const answer = `HTTP ${status} ${res.statusMessage ?? ''}`.trim();
        if (status >= 500 || status === 429) return { retry: answer };
        throw new FinalAnswer(answer);
      }
      const maxBytes = limits.maxBytes ?? Infinity;
      const tooLarge = () => new FileOpError('ELIMIT', `ADD ${brief(url.href)}: the download is larger than ${maxBytes} bytes, the most this builder takes; serve a smaller file`);
      if (Number(res.headers['content-length'] ?? 0) > maxBytes) {
        res.destroy();
        throw tooLarge();
      }
      const hash = createHash(opts.algorithm ?? 'sha256');
      let bytes = 0;
      const tap = new Transform({ transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        if (bytes > maxBytes) { cb(tooLarge()); return; }
        hash.update(chunk);
        cb(null, chunk);
      } });
      try {
        await pipeline(res, tap, createWriteStream(file), { signal: got.signal });
      } catch (err) {
        limits.signal?.throwIfAborted();
        if (err instanceof FileOpError) throw err; // over the limit: another attempt would be too
        return { retry: describeFetchError(got.signal.aborted ? got.signal.reason : err) };
      }
      return { value: { hex: hash.digest('hex'), bytes, lastModified: lastModifiedOf(res.headers['last-modified']), etag } };
    } finally {
      got.done();
    }
  };
  try {
    return await withRetries({ attempts: retries + 1, backoffMs: 400, signal: limits.signal, fatal: () => true }, attempt);
  } catch (err) {
    if (err instanceof RetriesExhaustedError || err instanceof FinalAnswer) throw failed(err instanceof FinalAnswer ? err.message : err.last);
    throw err;
  }
}

/** An ETag without its weak prefix, for comparison (as BuildKit's etagValue). */
export function etagOf(header: string | undefined): string | null {
  return header ? header.replace(/^W\//, '') : null;
}

export function lastModifiedOf(header: string | undefined): Date | null {
  return header && !Number.isNaN(Date.parse(header)) ? new Date(Date.parse(header)) : null;
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  if (e instanceof HttpTimeoutError) return e.message;
  return e.code ?? e.cause?.code ?? e.cause?.message ?? e.message;
}

/** A URL in a message: at most 200 characters of it. */
export function brief(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** The Dockerfile frontend's name for a downloaded file (convert_copy.go): the last segment of
 *  the URL's path as written (not a redirect's, not Content-Disposition), else "__unnamed__". */
export function urlFileName(url: URL): string {
  let path = url.pathname;
  try { path = decodeURIComponent(path); } catch { /* kept as written */ }
  const base = posix.basename(path);
  return base && base !== '/' && base !== '.' && base !== '..' ? base : '__unnamed__';
}
