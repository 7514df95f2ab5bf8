// ADD <url> without --checksum is keyed by what the URL serves now, as BuildKit's HTTP source
// (source/http): each build asks the server again. Validators remembered from earlier downloads
// (ETag -> digest of the body) let an unchanged file be confirmed without downloading it: a HEAD
// whose ETag is a remembered one, else a GET with If-None-Match answered 304. Anything else is a
// full download, whose digest then keys the step. Like BuildKit, only ETags validate; a
// Last-Modified alone is not trusted to mean "same bytes" (it has one-second precision), it is
// only part of the key, since it becomes the file's mtime.
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brief, downloadUrl, etagOf, httpLimitsOf, parseAddUrl, type AddUrlOptions, type FetchedUrl } from './addUrl.js';
import { FileOpError } from './FileOpError.js';
import { httpGet } from './httpGet.js';

/** What one download taught: the body behind an ETag. */
export interface UrlValidator {
  etag: string;
  /** `sha256:<hex>` of the body served under that ETag. */
  digest: string;
  /** ISO time of the Last-Modified that came with it. */
  lastModified?: string;
}

/** Remembered validators per URL key (BuildKit keeps them as metadata of its download refs). */
export interface UrlValidatorStore {
  /** The validators remembered for `key`, newest first. */
  list(key: string): Promise<UrlValidator[]>;
  remember(key: string, validator: UrlValidator): Promise<void>;
}

function isValidator(v: unknown): v is UrlValidator {
  const o = v as Partial<UrlValidator> | null;
  return typeof o === 'object' && o !== null && typeof o.etag === 'string' && typeof o.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(o.digest)
    && (o.lastModified === undefined || (typeof o.lastModified === 'string' && !Number.isNaN(Date.parse(o.lastModified))));
}

/** One small JSON file per URL key in `dir`, holding at most `max` validators. */
export class DirUrlValidatorStore implements UrlValidatorStore {
  constructor(private readonly dir: string, private readonly max = 8) {}

  private file(key: string): string {
    return join(this.dir, `${createHash('sha256').update(key).digest('hex')}.json`);
  }

  async list(key: string): Promise<UrlValidator[]> {
    let text: string;
    try { text = await fsp.readFile(this.file(key), 'utf8'); } catch { return []; }
    // A damaged file only costs a download: it is rewritten by the next one.
    try {
      const parsed: unknown = JSON.parse(text);
      return Array.isArray(parsed) && parsed.every(isValidator) ? parsed : [];
    } catch { return []; }
  }

  async remember(key: string, validator: UrlValidator): Promise<void> {
    const kept = (await this.list(key)).filter((v) => v.etag !== validator.etag);
    await fsp.mkdir(this.dir, { recursive: true });
    const tmp = `${this.file(key)}.${process.pid}.${Math.random().toString(36).slice(2)}`;
    await fsp.writeFile(tmp, JSON.stringify([validator, ...kept].slice(0, this.max)));
    // Readers never see half a file; of two concurrent writers the later one wins (one validator lost).
    await fsp.rename(tmp, this.file(key));
  }
}

export type RevalidateOptions = Pick<AddUrlOptions, 'url' | 'timeoutMs' | 'connectTimeoutMs' | 'idleTimeoutMs' | 'signal' | 'tmpDir' | 'retries' | 'refuseAddress' | 'line' | 'maxBytes'> & {
  store: UrlValidatorStore;
  /** Keeps one tenant's validators from answering for another's builds. */
  scope: string;
};

/** The content a URL serves now. */
export interface UrlRevision {
  /** `sha256:<hex>` of the body. */
  digest: string;
  lastModified: Date | null;
  /** How it was learnt: a HEAD or a 304 confirming a remembered ETag, or a download. */
  how: 'head' | 'not-modified' | 'downloaded';
  /** The body, when this check downloaded it (give it to addUrl as `fetched`). */
  fetched?: FetchedUrl;
  /** Removes the downloaded body. */
  release(): Promise<void>;
}

export async function revalidateUrl(opts: RevalidateOptions): Promise<UrlRevision> {
  const url = parseAddUrl(opts.url);
  const key = `${opts.scope}\0${url.href}`;
  const known = await opts.store.list(key);
  const byEtag = new Map(known.map((v) => [v.etag, v]));
  // A 304 without an ETag refers to the one asked about, when only one was (BuildKit #905).
  const only = known.length === 1 ? known[0]!.etag : null;
  const limits = httpLimitsOf(opts);
  const conditional: Record<string, string> = known.length > 0 ? { 'if-none-match': known.map((v) => v.etag).join(', ') } : {};
  const settled = (v: UrlValidator, how: UrlRevision['how']): UrlRevision => ({
    digest: v.digest, lastModified: v.lastModified ? new Date(v.lastModified) : null, how, release: async () => {},
  });
  if (known.length > 0) {
    // HEAD first, comparing ETags here: some servers send ETags but mishandle If-None-Match.
    try {
      const got = await httpGet(url, limits, conditional, 'HEAD');
      got.res.resume();
      got.done();
      const status = got.res.statusCode;
      const etag = etagOf(got.res.headers.etag) ?? (status === 304 ? only : null);
      const hit = etag !== null && (status === 200 || status === 304) ? byEtag.get(etag) : undefined;
      if (hit) return settled(hit, 'head');
    } catch {
      // The GET below reports a real failure (or the build's cancel) in its own words.
      opts.signal?.throwIfAborted();
    }
  }
  const tmp = await fsp.mkdtemp(join(opts.tmpDir ?? tmpdir(), 'buildyard-url-'));
  const release = () => fsp.rm(tmp, { recursive: true, force: true });
  try {
    const file = join(tmp, 'download');
    const answer = await downloadUrl(url, file, limits, { retries: opts.retries, line: opts.line, headers: conditional });
    if ('notModified' in answer) {
      await release();
      const etag = answer.etag ?? only;
      const hit = etag !== null ? byEtag.get(etag) : undefined;
      if (!hit) throw new FileOpError('EFETCH', `ADD ${brief(opts.url)}: the server answered 304 Not Modified naming an ETag it never sent (${brief(String(etag))}); fix the server's ETags or pin the file with --checksum`);
      return settled(hit, 'not-modified');
    }
    const digest = `sha256:${answer.hex}`;
    if (answer.etag) await opts.store.remember(key, { etag: answer.etag, digest, ...(answer.lastModified ? { lastModified: answer.lastModified.toISOString() } : {}) });
    return { digest, lastModified: answer.lastModified, how: 'downloaded', fetched: { file, digest, bytes: answer.bytes, lastModified: answer.lastModified }, release };
  } catch (err) {
    await release();
    throw err;
  }
}
