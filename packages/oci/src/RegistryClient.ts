// The OCI distribution client, written by hand: no maintained TypeScript client can push
// (see DESIGN.md §4). It speaks the distribution spec over Node's fetch (undici): manifests and
// blobs, token and basic auth, monolithic/chunked uploads, cross-repository mounts, retries.
import { randomInt } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { RetriesExhaustedError, withRetries, type RetryOptions } from './retry.js';
import { Digester, assertDigest, sha256Digest, type Digest } from './digest.js';
import { DigestMismatchError, type BlobInfo, type FsContentStore } from './FsContentStore.js';
import { MANIFEST_ACCEPT, MediaTypes, isIndexMediaType } from './mediaTypes.js';
import { hostPlatform, selectManifest } from './platform.js';
import { formatReference, parseReference, registryApiHost, type ImageReference, type RepositoryReference } from './reference.js';
import { credentialsFor, loadDockerConfig, normalizeRegistryHost, type CredentialMap, type Credentials } from './credentials.js';
import { parseWwwAuthenticate, type AuthChallenge } from './authChallenge.js';
import { addressRefusal, type RegistryNetwork } from './addressPolicy.js';
import type { BlobProofs } from './ProvenBlobs.js';
import { RepositoryRefusedError, type RepositoryGuard } from './repositoryPolicy.js';
import { isImageIndex, type AnyManifest, type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type Platform } from './types.js';

export interface RegistryClientOptions {
  /** Explicit credentials by registry host; they win over the docker config file. */
  credentials?: CredentialMap;
  /** Path of a docker config.json, or false to read none. Default: DOCKER_CONFIG or ~/.docker/config.json. */
  dockerConfig?: string | false;
  /** Hosts (host[:port]) reachable over plain http besides loopback ones. */
  insecureHosts?: string[];
  /** Blobs pulled are cached here, and pushes read blobs from here when no source is given. */
  store?: FsContentStore;
  /** Per request: until response headers, and the longest pause while streaming a body. Default 30 s. */
  timeoutMs?: number;
  /** Attempts for requests failing with 5xx/429/network errors. Default 4. */
  attempts?: number;
  /** First backoff delay, doubled on each retry. Default 200 ms. */
  backoffMs?: number;
  /** Blobs larger than this are uploaded in chunks. Default 64 MiB. */
  chunkedThreshold?: number;
  /** PATCH size for chunked uploads. Default 16 MiB. */
  chunkSize?: number;
  userAgent?: string;
  /**
   * The network policy of a build's registries: every connection to a registry it does not trust
   * opens only to an address it allows, redirects and token realms included. Absent, anything is
   * reached (the CLI, the cluster's own blob store).
   */
  network?: RegistryNetwork;
  /**
   * The blobs this client's tenant has been shown by its registries (see ProvenBlobs): servesBlob
   * answers from them, and records what it proves. Absent, every check asks the registry.
   */
  proofs?: BlobProofs;
  /**
   * The repositories a build's tenant may use (RepositoryPolicy.guard): asked before every
   * operation, a cross-repository mount's source included; its refusal is the operation's error.
   * Absent, any repository is used.
   */
  repositories?: RepositoryGuard;
}

export interface CallOptions {
  /** Credentials for this call only (win over configured ones). */
  credentials?: Credentials;
  signal?: AbortSignal;
}

export interface FetchedManifest {
  digest: Digest;
  mediaType: string;
  size: number;
  bytes: Buffer;
  manifest: AnyManifest;
}

export interface ResolvedImage {
  reference: ImageReference;
  /** Set when the reference pointed at an index / manifest list. */
  indexDigest?: Digest;
  index?: ImageIndex;
  /** Descriptor of the platform manifest (with platform when it came from an index). */
  descriptor: Descriptor;
  manifestDigest: Digest;
  manifest: ImageManifest;
  manifestBytes: Buffer;
  config: ImageConfig;
  configBytes: Buffer;
}

export type BlobSource = Buffer | Uint8Array | (() => Readable | AsyncIterable<Uint8Array>);

export interface PushBlobOptions extends CallOptions {
  /** Repository (same registry) that already holds the blob: tried as a cross-repository mount first. */
  mountFrom?: string;
  /** Force (true) or forbid (false) a chunked upload; default by size. */
  chunked?: boolean;
}

export interface PushBlobResult extends BlobInfo {
  result: 'exists' | 'mounted' | 'uploaded';
}

export class RegistryError extends Error {
  constructor(
    message: string,
    readonly registry: string,
    readonly operation: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
    this.name = 'RegistryError';
  }
}

type Body = Buffer | Uint8Array | (() => Readable | AsyncIterable<Uint8Array>) | undefined;

interface Operation {
  registry: string;
  /** Human words for errors: `GET manifest library/busybox:latest`. */
  name: string;
  /** Token scopes: `repository:<name>:pull[,push]`. */
  scopes: string[];
}

interface RequestInit2 {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Body;
}

interface Reply {
  res: Response;
  /** Restarts the idle timer (call per streamed chunk). */
  touch(): void;
  /** Clears the timer once the body has been consumed. */
  finish(): void;
}

const LOOPBACK_V4 = /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** Host part of `host[:port]` / `[v6]:port`. */
function hostOnly(hostPort: string): string {
  if (hostPort.startsWith('[')) return hostPort.slice(1, hostPort.indexOf(']'));
  const colons = hostPort.split(':').length - 1;
  if (colons > 1) return hostPort; // bare IPv6
  return hostPort.split(':')[0];
}

export function isLoopbackHost(hostPort: string): boolean {
  const h = hostOnly(hostPort.toLowerCase());
  return h === 'localhost' || h === '::1' || LOOPBACK_V4.test(h);
}

function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/** Largest registry answer read into memory (a manifest, index, token, tag list): the distribution spec's manifests are up to 4 MiB. */
export const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;
/** Largest image config fetched; a registry (anyone's) could otherwise name one of gigabytes. */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
/** Bytes of an error answer kept for its message. */
const MAX_ERROR_BYTES = 64 * 1024;
/** servesBlob: blobs up to this size are downloaded whole; larger ones answer one range of SERVES_SAMPLE bytes. */
const SERVES_WHOLE_BELOW = 1 << 20;
const SERVES_SAMPLE = 4096;

/**
 * A response body of at most `limit` bytes. A registry is anyone's server: one answering a
 * manifest request with gigabytes would otherwise be buffered whole. Refused by its
 * Content-Length when it says so, else once the bytes read pass the limit.
 */
async function readBody(res: Response, limit: number, op: { registry: string; name: string }): Promise<Buffer> {
  if (!res.body) return Buffer.alloc(0);
  const tooLarge = () => new RegistryError(`registry ${op.registry}: ${op.name}: the answer is larger than ${limit / 1024 / 1024} MiB; a registry answers this with a small JSON document`, op.registry, op.name);
  if (Number(res.headers.get('content-length') ?? 0) > limit) {
    await res.body.cancel().catch(() => undefined);
    throw tooLarge();
  }
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(); // leaving the loop cancels the stream
    parts.push(Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

/** The start of an error answer, for its message (never the whole of a huge one). */
async function readErrorText(res: Response): Promise<string> {
  try {
    return (await readBody(res, MAX_ERROR_BYTES, { registry: '', name: '' })).toString('utf8');
  } catch {
    return '';
  }
}

async function distributionErrorText(res: Response): Promise<{ text: string; code?: string }> {
  const raw = await readErrorText(res);
  try {
    const doc = JSON.parse(raw) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    if (doc.errors?.length) {
      const e = doc.errors[0];
      return { text: `${e.code ?? ''}${e.message ? `: ${e.message}` : ''}`, code: e.code };
    }
  } catch { /* not JSON */ }
  return { text: raw.replace(/\s+/g, ' ').slice(0, 200) };
}

function toReadable(body: Exclude<Body, undefined | Buffer | Uint8Array>): Readable {
  const src = body();
  return src instanceof Readable ? src : Readable.from(src);
}

/** Splits a stream into Buffers of exactly `size` bytes (the last may be shorter). */
async function* rechunk(src: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let have = 0;
  for await (const c of src) {
    let chunk = Buffer.isBuffer(c) ? c : Buffer.from(c);
    while (chunk.length > 0) {
      const take = Math.min(size - have, chunk.length);
      parts.push(chunk.subarray(0, take));
      have += take;
      chunk = chunk.subarray(take);
      if (have === size) {
        yield Buffer.concat(parts);
        parts = [];
        have = 0;
      }
    }
  }
  if (have > 0) yield Buffer.concat(parts);
}

interface CachedAuth {
  header: string;
  expiresAt: number;
}

export class RegistryClient {
  private readonly opts: Required<Pick<RegistryClientOptions, 'timeoutMs' | 'attempts' | 'backoffMs' | 'chunkedThreshold' | 'chunkSize' | 'userAgent'>>;
  private readonly explicitCredentials: CredentialMap;
  private readonly insecure: Set<string>;
  private fileCredentials?: Promise<CredentialMap>;
  private readonly authCache = new Map<string, CachedAuth>();
  readonly store?: FsContentStore;

  constructor(private readonly options: RegistryClientOptions = {}) {
    this.opts = {
      timeoutMs: options.timeoutMs ?? 30_000,
      attempts: Math.max(1, options.attempts ?? 4),
      backoffMs: options.backoffMs ?? 200,
      chunkedThreshold: options.chunkedThreshold ?? 64 * 1024 * 1024,
      chunkSize: options.chunkSize ?? 16 * 1024 * 1024,
      userAgent: options.userAgent ?? 'buildyard/0.1',
    };
    this.explicitCredentials = {};
    for (const [k, v] of Object.entries(options.credentials ?? {})) this.explicitCredentials[normalizeRegistryHost(k)] = v;
    this.insecure = new Set((options.insecureHosts ?? []).map((h) => h.toLowerCase()));
    this.store = options.store;
  }

  /** The fetch() of requests of an operation on `registry`. */
  private fetchFor(registry: string): Promise<typeof fetch> | typeof fetch {
    return this.options.network?.fetchFor(registry) ?? fetch;
  }

  /** A connection the network policy refused, as the one-line error of `op` (never retried). */
  private refusedError(op: Operation, err: unknown): RegistryError | undefined {
    const refusal = addressRefusal(err);
    if (!refusal) return undefined;
    return new RegistryError(`registry ${op.registry}: ${op.name}: ${refusal.message}; use a registry builds may reach, or ask the operator to list this one in registry.trusted`, op.registry, op.name);
  }

  /** `http://` only for loopback or explicitly insecure hosts; `https://` otherwise. */
  baseUrl(registry: string): string {
    const host = registryApiHost(registry);
    const plain = isLoopbackHost(host) || this.insecure.has(host.toLowerCase()) || this.insecure.has(registry.toLowerCase());
    return `${plain ? 'http' : 'https'}://${host}`;
  }

  // ---------------------------------------------------------------- manifests

  /** GET or HEAD of a manifest by tag or digest, accepting every manifest media type. */
  private async requestManifest(reference: string | ImageReference, method: 'GET' | 'HEAD', call: CallOptions) {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const op = this.op(ref, `${method} manifest ${formatReference(ref)}`, 'pull');
    const url = `${this.baseUrl(ref.registry)}/v2/${ref.repository}/manifests/${ref.digest ?? ref.tag ?? 'latest'}`;
    return { ref, op, ...await this.requestBuffer(op, { method, url, headers: { accept: MANIFEST_ACCEPT } }, call) };
  }

  async getManifest(reference: string | ImageReference, call: CallOptions = {}): Promise<FetchedManifest> {
    const { ref, op, status, headers, body } = await this.requestManifest(reference, 'GET', call);
    if (status !== 200) throw this.httpError(op, status, body, 'check the name and tag, and that you may pull it');
    const digest = sha256Digest(body);
    if (ref.digest && digest !== ref.digest) throw new DigestMismatchError(ref.digest, digest);
    let manifest: AnyManifest;
    try {
      manifest = JSON.parse(body.toString('utf8')) as AnyManifest;
    } catch {
      throw new RegistryError(`registry ${ref.registry}: ${op.name}: the manifest is not valid JSON`, ref.registry, op.name);
    }
    const contentType = headers.get('content-type')?.split(';')[0].trim();
    const mediaType = manifest.mediaType ?? contentType ?? (isImageIndex(manifest) ? MediaTypes.OciIndex : MediaTypes.OciManifest);
    return { digest, mediaType, size: body.length, bytes: body, manifest };
  }

  /** HEAD a manifest: its descriptor, or undefined when it does not exist. */
  async headManifest(reference: string | ImageReference, call: CallOptions = {}): Promise<Descriptor | undefined> {
    const { ref, op, status, headers, body } = await this.requestManifest(reference, 'HEAD', call);
    if (status === 404) return undefined;
    if (status !== 200) throw this.httpError(op, status, body);
    const digest = headers.get('docker-content-digest') ?? ref.digest;
    if (!digest) throw new RegistryError(`registry ${ref.registry}: ${op.name}: no Docker-Content-Digest header; use getManifest instead`, ref.registry, op.name);
    return {
      mediaType: headers.get('content-type')?.split(';')[0].trim() ?? MediaTypes.OciManifest,
      digest: assertDigest(digest, 'Docker-Content-Digest'),
      size: Number(headers.get('content-length') ?? 0),
    };
  }

  /**
   * Resolves a reference to one platform's manifest and config. Indexes / manifest lists are
   * narrowed with containerd's platform rules; `platform` defaults to the host's. A reference
   * naming a manifest itself is that image, whatever its platform: containerd's
   * images.Manifest (so BuildKit) checks the platform of an index's entries only.
   */
  async resolve(reference: string | ImageReference, platform?: string | Platform, call: CallOptions = {}, tops?: Map<string, Promise<FetchedManifest>>): Promise<ResolvedImage> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    // `tops`: what each reference pointed at, shared by the resolutions of one build (its platforms).
    const topKey = formatReference(ref);
    let topFetch = tops?.get(topKey);
    if (!topFetch) {
      topFetch = this.getManifest(ref, call);
      tops?.set(topKey, topFetch);
      topFetch.catch(() => tops?.delete(topKey));
    }
    const top = await topFetch;
    let fetched = top;
    let descriptor: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.size };
    let index: ImageIndex | undefined;
    if (isImageIndex(top.manifest) || isIndexMediaType(top.mediaType)) {
      index = top.manifest as ImageIndex;
      descriptor = selectManifest(index, platform ?? hostPlatform(), formatReference(ref));
      fetched = await this.childManifest(ref, descriptor, call);
      if (isImageIndex(fetched.manifest)) {
        throw new RegistryError(`registry ${ref.registry}: ${formatReference(ref)} nests an index inside an index, which is not supported`, ref.registry, 'resolve');
      }
    }
    const manifest = fetched.manifest as ImageManifest;
    if (!manifest.config?.digest) {
      throw new RegistryError(`registry ${ref.registry}: ${formatReference(ref)} manifest ${fetched.digest} has no config; it is not a container image`, ref.registry, 'resolve');
    }
    if (!(manifest.config.size <= MAX_CONFIG_BYTES)) {
      throw new RegistryError(`registry ${ref.registry}: ${formatReference(ref)} names an image config of ${manifest.config.size} bytes; more than ${MAX_CONFIG_BYTES / 1024 / 1024} MiB is not read`, ref.registry, 'resolve');
    }
    const configBytes = await this.fetchBlobBytes(ref, manifest.config, call);
    const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
    return {
      reference: ref,
      ...(index ? { indexDigest: top.digest, index } : {}),
      descriptor,
      manifestDigest: fetched.digest,
      manifest,
      manifestBytes: fetched.bytes,
      config,
      configBytes,
    };
  }

  /**
   * A platform manifest an index this call fetched names: from the store when it holds those
   * bytes (content-addressed, so they are what the registry would send; the index just came
   * from the registry with this call's credentials, so access was checked), else fetched and
   * kept there (a rebuild resolves its bases in one round trip per reference).
   */
  private async childManifest(ref: ImageReference, descriptor: Descriptor, call: CallOptions): Promise<FetchedManifest> {
    const store = this.store;
    if (store && (await store.has(descriptor.digest))) {
      const bytes = await store.readBytes(descriptor.digest).catch(() => undefined);
      if (bytes && sha256Digest(bytes) === descriptor.digest) {
        try {
          const manifest = JSON.parse(bytes.toString('utf8')) as AnyManifest;
          return { digest: descriptor.digest, mediaType: manifest.mediaType ?? descriptor.mediaType, size: bytes.length, bytes, manifest };
        } catch { /* not a manifest after all: fetch it */ }
      }
    }
    const fetched = await this.getManifest({ registry: ref.registry, repository: ref.repository, digest: descriptor.digest }, call);
    await store?.put(fetched.bytes, fetched.digest).catch(() => undefined);
    return fetched;
  }

  /** PUT a manifest or index by tag or digest; returns its digest. */
  async putManifest(reference: string | ImageReference, manifest: Buffer | AnyManifest, mediaType?: string, call: CallOptions = {}): Promise<Digest> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const bytes = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    let mt = mediaType;
    if (!mt) {
      const doc = Buffer.isBuffer(manifest) ? (JSON.parse(manifest.toString('utf8')) as AnyManifest) : manifest;
      mt = doc.mediaType ?? (isImageIndex(doc) ? MediaTypes.OciIndex : MediaTypes.OciManifest);
    }
    const digest = sha256Digest(bytes);
    if (ref.digest && ref.digest !== digest) throw new DigestMismatchError(ref.digest, digest);
    const which = ref.tag && !ref.digest ? ref.tag : ref.digest ?? digest;
    const op = this.op(ref, `PUT manifest ${ref.registry}/${ref.repository}:${which}`, 'pull,push');
    const { status, headers, body } = await this.requestBuffer(op, {
      method: 'PUT',
      url: `${this.baseUrl(ref.registry)}/v2/${ref.repository}/manifests/${which}`,
      headers: { 'content-type': mt },
      body: bytes,
    }, call, transientDigestInvalid);
    if (status !== 201 && status !== 200) throw this.httpError(op, status, body, 'push every referenced blob and manifest first');
    const echoed = headers.get('docker-content-digest');
    if (echoed && echoed !== digest) throw new DigestMismatchError(digest, echoed);
    return digest;
  }

  async listTags(repository: string | RepositoryReference, call: CallOptions = {}): Promise<string[]> {
    const repo = this.repo(repository);
    const op = this.op(repo, `GET tags ${repo.registry}/${repo.repository}`, 'pull');
    const { status, body } = await this.requestBuffer(op, { method: 'GET', url: `${this.baseUrl(repo.registry)}/v2/${repo.repository}/tags/list` }, call);
    if (status === 404) return [];
    if (status !== 200) throw this.httpError(op, status, body);
    return (JSON.parse(body.toString('utf8')) as { tags?: string[] | null }).tags ?? [];
  }

  // ---------------------------------------------------------------- blobs (pull)

  async blobExists(repository: string | RepositoryReference, digest: string, call: CallOptions = {}): Promise<boolean> {
    const repo = this.repo(repository);
    const op = this.op(repo, `HEAD blob ${digest} in ${repo.registry}/${repo.repository}`, 'pull');
    const { status, body } = await this.requestBuffer(op, { method: 'HEAD', url: `${this.baseUrl(repo.registry)}/v2/${repo.repository}/blobs/${assertDigest(digest)}` }, call);
    if (status === 200) return true;
    if (status === 404) return false;
    throw this.httpError(op, status, body);
  }

  /**
   * Whether the registry holds `digest` in `repository`, shown by its bytes, for a blob `store`
   * already has. A HEAD proves nothing: the store is shared by every tenant, and a registry of
   * an attacker's answers 200 to any digest, so a HEAD would let a manifest or cache of his name
   * another tenant's layer or config and have it used. A small blob is downloaded whole and
   * verified; a large one must answer a random 4 KiB range with the store's bytes there.
   */
  async servesBlob(repository: string | RepositoryReference, digest: string, store: FsContentStore, call: CallOptions = {}): Promise<boolean> {
    const repo = this.repo(repository);
    const d = assertDigest(digest);
    const proofs = this.options.proofs;
    if (proofs?.has(repo.registry, repo.repository, d)) return true;
    const served = await this.checkServes(repo, d, store, call);
    if (served) proofs?.add(repo.registry, repo.repository, d);
    return served;
  }

  private async checkServes(repo: RepositoryReference, d: Digest, store: FsContentStore, call: CallOptions): Promise<boolean> {
    const size = await store.size(d);
    const url = `${this.baseUrl(repo.registry)}/v2/${repo.repository}/blobs/${d}`;
    const op = this.op(repo, `GET blob ${d} from ${repo.registry}/${repo.repository}`, 'pull');
    const whole = async (): Promise<boolean> => {
      try {
        for await (const _chunk of await this.openBlobStream(repo, d, call)) { /* verified at its end */ }
        return true;
      } catch (err) {
        if (err instanceof DigestMismatchError || (err instanceof RegistryError && err.status === 404)) return false;
        throw err;
      }
    };
    if (size <= SERVES_WHOLE_BELOW) return whole();
    const start = randomInt(0, size - SERVES_SAMPLE);
    const { status, body } = await this.requestBuffer(op, { method: 'GET', url, headers: { range: `bytes=${start}-${start + SERVES_SAMPLE - 1}` } }, call);
    if (status === 404) return false;
    if (status === 200) return whole(); // Range not supported: the whole blob, verified
    if (status !== 206) throw this.httpError(op, status, body);
    const local = Buffer.alloc(SERVES_SAMPLE);
    // A tiered store may hold it in its remote tier only: then the registry's copy is checked whole.
    const fh = await open(store.path(d), 'r').catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return undefined; throw err; });
    if (!fh) return whole();
    try { await fh.read(local, 0, SERVES_SAMPLE, start); } finally { await fh.close(); }
    return body.equals(local);
  }

  /** Downloads a blob fully into memory, verified. Served from the store when it has it. */
  async fetchBlobBytes(repository: string | RepositoryReference, blob: string | Pick<Descriptor, 'digest' | 'size'>, call: CallOptions = {}): Promise<Buffer> {
    const d = assertDigest(typeof blob === 'string' ? blob : blob.digest);
    if (this.store) {
      // With a size the download stops at it (a registry sending more is cut off).
      await this.pullBlob(repository, typeof blob === 'string' ? d : { digest: d, size: blob.size }, undefined, call);
      return this.store.readBytes(d);
    }
    const parts: Buffer[] = [];
    let size = 0;
    for await (const c of this.fetchBlob(repository, d, call)) {
      size += (c as Buffer).length;
      if (typeof blob !== 'string' && size > blob.size) throw new Error(`size mismatch for ${d}: more than the expected ${blob.size} bytes`);
      parts.push(c as Buffer);
    }
    return Buffer.concat(parts);
  }

  /**
   * Streams a blob. The stream errors with DigestMismatchError at its end if the bytes are wrong.
   * With a store, the blob is first downloaded into it (verified, retried) and read from there.
   */
  fetchBlob(repository: string | RepositoryReference, digest: string, call: CallOptions = {}): Readable {
    const d = assertDigest(digest);
    const store = this.store;
    if (store) {
      const self = this;
      return Readable.from((async function* () {
        await self.pullBlob(repository, d, undefined, call);
        yield* store.openRead(d);
      })());
    }
    const out = new Transform({ transform(chunk, _enc, cb) { cb(null, chunk); } });
    this.openBlobStream(repository, d, call).then((src) => {
      src.on('error', (err) => out.destroy(err));
      src.pipe(out);
    }, (err: Error) => out.destroy(err));
    return out;
  }

  /**
   * Ensures a blob is in `store` (default: the client's store), downloading it with digest and
   * size verification and retrying the whole download on network errors.
   */
  async pullBlob(repository: string | RepositoryReference, descriptor: string | Pick<Descriptor, 'digest' | 'size'>, store?: FsContentStore, call: CallOptions = {}): Promise<BlobInfo> {
    const target = store ?? this.store;
    if (!target) throw new Error('pullBlob needs a content store: pass one or construct RegistryClient with { store }');
    const digest = assertDigest(typeof descriptor === 'string' ? descriptor : descriptor.digest);
    const expectedSize = typeof descriptor === 'string' ? undefined : descriptor.size;
    const repo = this.repo(repository);
    if (await target.has(digest)) {
      // The store is shared by every tenant: a copy there proves nothing of this registry.
      if (!(await this.servesBlob(repo, digest, target, call))) {
        throw new RegistryError(`registry ${repo.registry}: blob ${digest} is not in ${repo.repository}; check the image reference (and that its registry holds what its manifest names)`, repo.registry, 'GET blob');
      }
      return { digest, size: await target.size(digest) };
    }
    try {
      return await withRetries(this.retryOptions(call), async () => ({ value: await target.put(await this.openBlobStream(repo, digest, call), digest, expectedSize) }));
    } catch (err) {
      if (!(err instanceof RetriesExhaustedError)) throw err;
      throw new RegistryError(`registry ${repo.registry}: GET blob ${digest} from ${repo.repository} ${err.message}`, repo.registry, 'GET blob');
    }
  }

  /** Opens the verified byte stream of a blob (digest checked at end). */
  private async openBlobStream(repository: string | RepositoryReference, digest: Digest, call: CallOptions): Promise<Readable> {
    const repo = this.repo(repository);
    const op = this.op(repo, `GET blob ${digest} from ${repo.registry}/${repo.repository}`, 'pull');
    const reply = await this.request(op, { method: 'GET', url: `${this.baseUrl(repo.registry)}/v2/${repo.repository}/blobs/${digest}` }, call);
    if (reply.res.status !== 200) {
      const buf = Buffer.from(await readErrorText(reply.res));
      reply.finish();
      throw this.httpError(op, reply.res.status, buf);
    }
    if (!reply.res.body) { reply.finish(); throw new RegistryError(`registry ${repo.registry}: ${op.name}: empty response`, repo.registry, op.name); }
    const digester = new Digester();
    const verify = new Transform({
      transform(chunk: Buffer, _enc, cb) { reply.touch(); digester.update(chunk); cb(null, chunk); },
      flush(cb) {
        reply.finish();
        const got = digester.digest();
        cb(got === digest ? null : new DigestMismatchError(digest, got));
      },
    });
    const src = Readable.fromWeb(reply.res.body as import('node:stream/web').ReadableStream<Uint8Array>);
    src.on('error', (err) => { reply.finish(); verify.destroy(err); });
    verify.on('close', () => { reply.finish(); if (!src.destroyed) src.destroy(); });
    return src.pipe(verify);
  }

  // ---------------------------------------------------------------- blobs (push)

  /**
   * Uploads a blob unless the registry has it: HEAD, then a cross-repository mount when
   * `mountFrom` is given, then a monolithic (POST+PUT) or chunked (POST, PATCH..., PUT) upload.
   * `source` defaults to the client's store.
   */
  async pushBlob(repository: string | RepositoryReference, descriptor: Pick<Descriptor, 'digest' | 'size'>, source?: BlobSource, options: PushBlobOptions = {}): Promise<PushBlobResult> {
    const repo = this.repo(repository);
    const digest = assertDigest(descriptor.digest);
    const size = descriptor.size;
    if (await this.blobExists(repo, digest, options)) return { digest, size, result: 'exists' };
    const base = `${this.baseUrl(repo.registry)}/v2/${repo.repository}/blobs/uploads/`;
    let location: string;
    const extraScopes = options.mountFrom ? [`repository:${options.mountFrom}:pull`] : [];
    const startOp = this.op(repo, options.mountFrom ? `mount blob ${digest} from ${options.mountFrom} into ${repo.registry}/${repo.repository}` : `start upload of ${digest} to ${repo.registry}/${repo.repository}`, 'pull,push', extraScopes);
    const startUrl = options.mountFrom ? `${base}?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(options.mountFrom)}` : base;
    {
      const { status, headers, body } = await this.requestBuffer(startOp, { method: 'POST', url: startUrl, headers: { 'content-length': '0' } }, options);
      if (status === 201 && options.mountFrom) return { digest, size, result: 'mounted' };
      if (status !== 202) throw this.httpError(startOp, status, body);
      location = this.location(headers, startUrl, startOp);
    }
    const op = this.op(repo, `upload blob ${digest} to ${repo.registry}/${repo.repository}`, 'pull,push');
    const src = source ?? this.storeSource(digest);
    const chunked = options.chunked ?? size > this.opts.chunkedThreshold;
    if (!chunked) {
      const { status, body } = await this.requestBuffer(op, {
        method: 'PUT',
        url: withQuery(location, { digest }),
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        body: src,
      }, options);
      if (status !== 201) throw this.httpError(op, status, body);
      return { digest, size, result: 'uploaded' };
    }
    let offset = 0;
    const stream = typeof src === 'function' ? toReadable(src) : Readable.from([Buffer.from(src)]);
    try {
      for await (const chunk of rechunk(stream, this.opts.chunkSize)) {
        const { status, headers, body } = await this.requestBuffer(op, {
          method: 'PATCH',
          url: location,
          headers: {
            'content-type': 'application/octet-stream',
            'content-range': `${offset}-${offset + chunk.length - 1}`,
            'content-length': String(chunk.length),
          },
          body: chunk,
        }, options);
        if (status !== 202) throw this.httpError(op, status, body);
        location = this.location(headers, location, op);
        offset += chunk.length;
      }
    } finally {
      stream.destroy();
    }
    if (offset !== size) throw new Error(`upload of ${digest} to ${repo.registry}/${repo.repository}: source has ${offset} bytes but the descriptor says ${size}; fix the descriptor`);
    const { status, body } = await this.requestBuffer(op, { method: 'PUT', url: withQuery(location, { digest }), headers: { 'content-length': '0' } }, options);
    if (status !== 201) throw this.httpError(op, status, body);
    return { digest, size, result: 'uploaded' };
  }

  private storeSource(digest: Digest): () => Readable {
    const store = this.store;
    if (!store) throw new Error(`pushBlob ${digest}: no source given and the client has no content store; pass the blob bytes or a store`);
    return () => store.openRead(digest);
  }

  private location(headers: Headers, base: string, op: Operation): string {
    const loc = headers.get('location');
    if (!loc) throw new RegistryError(`registry ${op.registry}: ${op.name}: the registry sent no upload Location`, op.registry, op.name);
    return new URL(loc, base).toString();
  }

  // ---------------------------------------------------------------- transport

  private repo(r: string | RepositoryReference): RepositoryReference {
    if (typeof r !== 'string') return { registry: r.registry, repository: r.repository };
    const p = parseReference(r, { defaultTag: false });
    return { registry: p.registry, repository: p.repository };
  }

  private op(repo: RepositoryReference, name: string, actions: string, extraScopes: string[] = []): Operation {
    const guard = this.options.repositories;
    if (guard) {
      guard(repo, actions.includes('push') ? 'push' : 'pull');
      for (const scope of extraScopes) {
        const from = /^repository:(.+):pull$/.exec(scope)?.[1];
        if (from) guard({ registry: repo.registry, repository: from }, 'pull');
      }
    }
    return { registry: repo.registry, name, scopes: [`repository:${repo.repository}:${actions}`, ...extraScopes] };
  }

  private httpError(op: Operation, status: number, body: Buffer, hint?: string): RegistryError {
    let detail = body.toString('utf8');
    let code: string | undefined;
    try {
      const doc = JSON.parse(detail) as { errors?: { code?: string; message?: string }[] };
      if (doc.errors?.length) {
        code = doc.errors[0].code;
        detail = `${code ?? ''}${doc.errors[0].message ? `: ${doc.errors[0].message}` : ''}`;
      }
    } catch { /* not JSON */ }
    detail = detail.replace(/\s+/g, ' ').trim().slice(0, 200);
    const what = status === 401 || status === 403 ? `; check the credentials for ${op.registry} (docker login) and your access to it` : hint ? `; ${hint}` : '';
    return new RegistryError(`registry ${op.registry}: ${op.name} failed: HTTP ${status}${detail ? ` ${detail}` : ''}${what}`, op.registry, op.name, status, code);
  }

  private async credentialsFor(registry: string, call: CallOptions): Promise<Credentials | undefined> {
    if (call.credentials) return call.credentials;
    const explicit = credentialsFor(this.explicitCredentials, registry);
    if (explicit) return explicit;
    if (this.options.dockerConfig === false) return undefined;
    this.fileCredentials ??= loadDockerConfig(this.options.dockerConfig);
    return credentialsFor(await this.fileCredentials, registry);
  }

  /** Request + read the whole body, with retries. */
  /** `alsoRetry`: an answer besides 5xx/429 that this request retries. */
  private async requestBuffer(op: Operation, init: RequestInit2, call: CallOptions, alsoRetry?: (status: number, body: Buffer) => boolean): Promise<{ status: number; headers: Headers; body: Buffer }> {
    return this.withRetries(op, call, async () => {
      const reply = await this.sendAuthed(op, init, call);
      try {
        const body = init.method === 'HEAD' ? Buffer.alloc(0) : await readBody(reply.res, reply.res.ok ? MAX_DOCUMENT_BYTES : MAX_ERROR_BYTES, op);
        const status = reply.res.status;
        const retry = isRetryableStatus(status) || alsoRetry?.(status, body) ? `HTTP ${status} ${body.toString('utf8').replace(/\s+/g, ' ').slice(0, 200)}`.trim() : undefined;
        return { value: { status, headers: reply.res.headers, body }, retry };
      } finally {
        reply.finish();
      }
    });
  }

  /** Request whose body the caller streams; retries only until headers arrive. */
  private async request(op: Operation, init: RequestInit2, call: CallOptions): Promise<Reply> {
    return this.withRetries(op, call, async () => {
      const reply = await this.sendAuthed(op, init, call);
      if (!isRetryableStatus(reply.res.status)) return { value: reply };
      const { text } = await distributionErrorText(reply.res);
      reply.finish();
      return { value: reply, retry: `HTTP ${reply.res.status} ${text}`.trim() };
    });
  }

  /**
   * Runs `fn` up to `attempts` times with exponential backoff while it reports a retryable
   * outcome (5xx/429) or throws a network error; the final error names registry and operation.
   */
  private async withRetries<T>(op: Operation, call: CallOptions, fn: () => Promise<{ value: T; retry?: string }>): Promise<T> {
    try {
      return await withRetries<T>(this.retryOptions(call), async () => {
        const out = await fn();
        return out.retry === undefined ? { value: out.value } : { retry: out.retry };
      });
    } catch (err) {
      if (!(err instanceof RetriesExhaustedError)) throw err;
      throw new RegistryError(`registry ${op.registry}: ${op.name} ${err.message}; check that the registry is up and reachable`, op.registry, op.name);
    }
  }

  /** Wrong bytes, missing blobs and auth failures do not get better by retrying. */
  private retryOptions(call: CallOptions): RetryOptions {
    return { attempts: this.opts.attempts, backoffMs: this.opts.backoffMs, signal: call.signal, fatal: (err) => err instanceof RegistryError || err instanceof DigestMismatchError || err instanceof RepositoryRefusedError };
  }

  private authKey(registry: string, scopes: string[], creds: Credentials | undefined): string {
    const who = creds ? `${creds.username ?? ''}:${sha256Digest(JSON.stringify(creds)).slice(7, 23)}` : 'anonymous';
    return `${registry}|${who}|${[...scopes].sort().join(' ')}`;
  }

  private async sendAuthed(op: Operation, init: RequestInit2, call: CallOptions): Promise<Reply> {
    const creds = await this.credentialsFor(op.registry, call);
    const key = this.authKey(op.registry, op.scopes, creds);
    const cached = this.authCache.get(key);
    const basicKey = this.authKey(op.registry, ['*basic*'], creds);
    const basic = this.authCache.get(basicKey);
    const header = cached && cached.expiresAt > Date.now() ? cached.header : basic?.header;
    const reply = await this.send(op, init, header, call);
    if (reply.res.status !== 401) return reply;
    const challenges = parseWwwAuthenticate(reply.res.headers.get('www-authenticate') ?? '');
    let auth;
    try {
      auth = await this.authenticate(op, challenges, creds, call);
    } catch (err) {
      await reply.res.body?.cancel().catch(() => undefined); // unread: it may be of any size
      reply.finish();
      throw err;
    }
    if (!auth) return reply; // no way to authenticate: the caller reports the 401 with its body
    await reply.res.body?.cancel().catch(() => undefined);
    reply.finish();
    this.authCache.set(auth.basic ? basicKey : key, { header: auth.header, expiresAt: auth.expiresAt });
    return this.send(op, init, auth.header, call);
  }

  private async authenticate(op: Operation, challenges: AuthChallenge[], creds: Credentials | undefined, call: CallOptions): Promise<{ header: string; expiresAt: number; basic?: boolean } | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      if (creds?.registryToken) return { header: `Bearer ${creds.registryToken}`, expiresAt: Date.now() + 60_000 };
      const realm = bearer.params.realm;
      if (!realm) throw new RegistryError(`registry ${op.registry}: ${op.name}: Bearer challenge without realm; the registry's auth is misconfigured`, op.registry, op.name);
      const realmUrl = new URL(realm);
      if (realmUrl.protocol === 'http:' && !isLoopbackHost(realmUrl.host) && !this.insecure.has(realmUrl.host.toLowerCase())) {
        throw new RegistryError(`registry ${op.registry}: token realm ${realm} is plain http; refusing to send credentials (add the host to insecureHosts to allow)`, op.registry, op.name);
      }
      const scopes = op.scopes.length ? op.scopes : bearer.params.scope ? [bearer.params.scope] : [];
      const tokenOp = `${op.name} (token from ${realmUrl.host})`;
      let res: Response;
      const ac = this.timeoutSignal(call);
      // The realm is the registry's to name: it is reached under the registry's policy.
      const fetchVia = await this.fetchFor(op.registry);
      try {
        if (creds?.identityToken) {
          const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'buildyard' });
          if (bearer.params.service) form.set('service', bearer.params.service);
          if (scopes.length) form.set('scope', scopes.join(' '));
          res = await fetchVia(realmUrl, { method: 'POST', body: form, headers: { 'user-agent': this.opts.userAgent }, signal: ac.signal });
        } else {
          if (bearer.params.service) realmUrl.searchParams.set('service', bearer.params.service);
          for (const s of scopes) realmUrl.searchParams.append('scope', s);
          const headers: Record<string, string> = { 'user-agent': this.opts.userAgent };
          if (creds?.username !== undefined && creds.password !== undefined) {
            headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
            realmUrl.searchParams.set('account', creds.username);
          }
          res = await fetchVia(realmUrl, { headers, signal: ac.signal });
        }
        const text = (await readBody(res, res.status === 200 ? MAX_DOCUMENT_BYTES : MAX_ERROR_BYTES, { registry: op.registry, name: tokenOp })).toString('utf8');
        if (res.status !== 200) {
          throw new RegistryError(`registry ${op.registry}: ${tokenOp} failed: HTTP ${res.status} ${text.replace(/\s+/g, ' ').slice(0, 200)}; check the credentials for ${op.registry} (docker login)`, op.registry, op.name, res.status);
        }
        const doc = JSON.parse(text) as { token?: string; access_token?: string; expires_in?: number };
        const token = doc.token ?? doc.access_token;
        if (!token) throw new RegistryError(`registry ${op.registry}: ${tokenOp}: the token response has no token`, op.registry, op.name);
        // Refresh a little early; the spec's default lifetime is 60 s.
        const ttl = Math.max(10, (doc.expires_in ?? 60) - 5) * 1000;
        return { header: `Bearer ${token}`, expiresAt: Date.now() + ttl };
      } catch (err) {
        if (err instanceof RegistryError) throw err;
        const refused = this.refusedError({ ...op, name: tokenOp }, err);
        if (refused) throw refused;
        throw new RegistryError(`registry ${op.registry}: ${tokenOp} failed: ${(err as Error).message}`, op.registry, op.name);
      } finally {
        ac.finish();
      }
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic && creds?.username !== undefined && creds.password !== undefined) {
      return { header: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`, expiresAt: Number.MAX_SAFE_INTEGER, basic: true };
    }
    return undefined;
  }

  private timeoutSignal(call: CallOptions): { signal: AbortSignal; touch(): void; finish(): void } {
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => controller.abort(new Error(`timed out after ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
      timer.unref();
    };
    arm();
    const signal = call.signal ? AbortSignal.any([controller.signal, call.signal]) : controller.signal;
    return { signal, touch: arm, finish: () => { if (timer) clearTimeout(timer); timer = undefined; } };
  }

  private async send(op: Operation, init: RequestInit2, authorization: string | undefined, call: CallOptions): Promise<Reply> {
    const t = this.timeoutSignal(call);
    const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, ...init.headers };
    if (authorization) headers.authorization = authorization;
    let body: RequestInit['body'];
    let duplex: 'half' | undefined;
    if (init.body instanceof Uint8Array) body = init.body;
    else if (typeof init.body === 'function') {
      const src = toReadable(init.body);
      // Each chunk sent counts as progress for the idle timeout.
      src.on('data', () => t.touch());
      body = Readable.toWeb(src) as unknown as RequestInit['body'];
      duplex = 'half';
    }
    try {
      const fetchVia = await this.fetchFor(op.registry);
      const res = await fetchVia(init.url, { method: init.method, headers, body, signal: t.signal, redirect: 'follow', ...(duplex ? { duplex } : {}) } as RequestInit);
      t.touch();
      return { res, touch: t.touch, finish: t.finish };
    } catch (err) {
      t.finish();
      const refused = this.refusedError(op, err);
      if (refused) throw refused;
      const reason = t.signal.aborted && t.signal.reason instanceof Error ? t.signal.reason.message : undefined;
      if (reason && !call.signal?.aborted) throw new Error(`${init.method} ${new URL(init.url).pathname} ${reason}`);
      throw err;
    }
  }
}

function withQuery(url: string, params: Record<string, string>): string {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * A manifest PUT answered 400 DIGEST_INVALID, though its digest was computed from the very bytes
 * sent: distribution's filesystem storage rewrites a blob's link file in place (truncate, then
 * write), so a manifest verified while another push of the same blob to the repository rewrites
 * it reads an empty link, an "invalid digest" (seen in a rolling restart, where the frontend
 * handing a build over and the one taking it push the same layers). The next attempt reads the
 * link whole.
 */
function transientDigestInvalid(status: number, body: Buffer): boolean {
  return status === 400 && body.includes('DIGEST_INVALID');
}
