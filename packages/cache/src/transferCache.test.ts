import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { Redis } from 'ioredis';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { FsContentStore, RegistryClient, sha256Digest, writeOciLayout } from '@buildyard/oci';
import { startRedis, startRegistry, type RedisService, type RegistryService } from '@buildyard/testkit';
import { BlobLeases, RedisCacheIndex, encodeCacheManifest, readCache, writeCache, inlineCacheAnnotation, INLINE_CACHE_ANNOTATION, type ExportedCacheRecord, type LayoutReader } from './index.js';

let redisService: RedisService;
let registryService: RegistryService;
let redis: Redis;
let dir: string;
before(async () => {
  [redisService, registryService] = await Promise.all([startRedis(), startRegistry()]);
  redis = new Redis(redisService.url);
  dir = await mkdtemp(join(tmpdir(), 'buildyard-cachetx-'));
});
after(async () => {
  redis?.disconnect();
  await Promise.allSettled([redisService?.stop(), registryService?.stop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A source store with two real layers (random bytes) and records for two platforms. */
async function source(name: string): Promise<{ store: FsContentStore; records: ExportedCacheRecord[] }> {
  const store = new FsContentStore(join(dir, name));
  const a = await store.put(Buffer.from(`layer a ${name} ${Math.random()}`));
  const b = await store.put(Buffer.from(`layer b ${name} ${Math.random()}`));
  const l = (x: { digest: string; size: number }) => ({ digest: x.digest, diffID: x.digest, size: x.size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
  return {
    store,
    records: [
      { key: `${name}-amd64-run`, layer: l(a), description: 'RUN a', platform: 'linux/amd64' },
      { key: `${name}-arm64-run`, layer: l(b), description: 'RUN b', platform: 'linux/arm64' },
      { key: `${name}-workdir`, layer: null, description: 'WORKDIR /src', platform: 'linux/amd64' },
    ],
  };
}

test('a registry cache exported from one store imports into an empty index and store', async () => {
  const src = await source('reg');
  const ref = `${registryService.host}/cache/unit:buildcache`;
  const written = await writeCache({ type: 'registry', ref, mode: 'max' }, src.records, { registry: new RegistryClient(), blobs: src.store });
  assert.equal(written.records, 3);
  assert.equal(written.layers, 2);
  // An independent tool sees BuildKit's cache document: an index of both layers and the cache config.
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' })) as { mediaType: string; manifests: Array<{ mediaType: string }> };
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(raw.manifests.map((m) => m.mediaType).slice(-1), ['application/vnd.buildkit.cacheconfig.v0']);
  assert.equal(raw.manifests.length, 3);

  const fresh = new FsContentStore(join(dir, 'reg-fresh'));
  const index = new RedisCacheIndex(redis, 'fresh-registry');
  // A record that already exists keeps its layer: first writer wins.
  const existing = await index.put({ ...src.records[2], description: 'mine' });
  const read = await readCache({ type: 'registry', ref, mode: 'min' }, index, { registry: new RegistryClient(), blobs: fresh });
  assert.equal(read.records, 3);
  assert.equal(read.added, 2);
  assert.equal(read.blobsFetched, 2);
  for (const r of src.records) {
    const got = await index.get(r.key);
    assert.deepEqual(got?.layer, r.layer);
    if (r.layer) assert.deepEqual(await fresh.readBytes(r.layer.digest), await src.store.readBytes(r.layer.digest));
  }
  assert.equal((await index.get(existing.key))?.description, 'mine');
  // image-manifest=true: the same records as an OCI image manifest, read back alike.
  const asManifest = `${registryService.host}/cache/unit:manifest`;
  await writeCache({ type: 'registry', ref: asManifest, mode: 'max', imageManifest: true }, src.records, { registry: new RegistryClient(), blobs: src.store });
  const rawManifest = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${asManifest}`], { encoding: 'utf8' })) as { mediaType: string; config: { mediaType: string } };
  assert.deepEqual([rawManifest.mediaType, rawManifest.config.mediaType], ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.buildkit.cacheconfig.v0']);
  assert.equal((await readCache({ type: 'registry', ref: asManifest, mode: 'min' }, new RedisCacheIndex(redis, 'fresh-manifest'), { registry: new RegistryClient(), blobs: fresh })).records, 3);
  // A second import fetches nothing.
  assert.equal((await readCache({ type: 'registry', ref, mode: 'min' }, index, { registry: new RegistryClient(), blobs: fresh })).blobsFetched, 0);
});

test('a local cache is an OCI layout that round-trips', async () => {
  const src = await source('local');
  const layout = join(dir, 'layout');
  const written = await writeCache({ type: 'local', tag: 'latest', mode: 'max' }, src.records, { registry: new RegistryClient(), blobs: src.store });
  assert.ok(written.layout, 'a local export returns the layout to stream to the client');
  assert.deepEqual(new Set(written.layout.blobs.map((b) => b.digest)), new Set([written.digest, ...src.records.flatMap((r) => (r.layer ? [r.layer.digest] : [])), written.layout.blobs[1].digest]));
  // Written where the client would write it, umoci reads it as a valid layout.
  await writeOciLayout(layout, { index: written.layout.index, store: src.store });
  assert.match(execFileSync('umoci', ['ls', '--layout', layout], { encoding: 'utf8' }), /latest/);
  const fresh = new FsContentStore(join(dir, 'local-fresh'));
  const index = new RedisCacheIndex(redis, 'fresh-local');
  const deps = (d: string) => ({ registry: new RegistryClient(), blobs: fresh, layout: directoryLayout(d) });
  const read = await readCache({ type: 'local', tag: 'latest', mode: 'min' }, index, deps(layout));
  assert.deepEqual([read.records, read.added, read.blobsFetched], [3, 3, 2]);
  assert.equal((await index.get('local-arm64-run'))?.platform, 'linux/arm64');
  await assert.rejects(readCache({ type: 'local', tag: 'latest', mode: 'min' }, index, deps(join(dir, 'nothing'))), /no OCI layout there/);
  await assert.rejects(readCache({ type: 'local', tag: 'other', mode: 'min' }, index, deps(layout)), /no cache tagged "other"/);
  await assert.rejects(readCache({ type: 'local', tag: 'latest', mode: 'min' }, index, { registry: new RegistryClient(), blobs: fresh }), /was not synced/);
});

test('a cache naming a layer only the shared store holds (another tenant\'s) is refused: the source must hold it', async () => {
  const victim = await source('victim');
  const shared = victim.store;
  // The attacker's layout lists the victim's layer digest, without the layer itself.
  const attacker = await source('attacker');
  const stolen = victim.records[0].layer!;
  const records = [{ key: 'attacker-key', layer: stolen, description: 'RUN steal', platform: 'linux/amd64' }];
  await attacker.store.put(await shared.readBytes(stolen.digest), stolen.digest);
  const written = await writeCache({ type: 'local', tag: 'latest', mode: 'max' }, records, { registry: new RegistryClient(), blobs: attacker.store });
  const layout = join(dir, 'attacker-layout');
  await writeOciLayout(layout, { index: written.layout!.index, store: attacker.store });
  await rm(join(layout, 'blobs/sha256', stolen.digest.slice('sha256:'.length)));
  const index = new RedisCacheIndex(redis, 'attacker');
  await assert.rejects(readCache({ type: 'local', tag: 'latest', mode: 'min' }, index, { registry: new RegistryClient(), blobs: shared, layout: directoryLayout(layout) }), /is not in the cache source/);
  assert.equal(await index.get('attacker-key'), undefined, 'no record was imported');
});

test('a registry cache naming a layer only the shared store holds is refused, however the registry answers HEAD', async () => {
  const victim = await source('victim-registry');
  const shared = victim.store;
  const stolen = victim.records[0].layer!;
  // The attacker's own registry: its cache names the victim's layer, and it says yes to every
  // HEAD and answers every other blob GET with bytes of its own.
  const doc = encodeCacheManifest([{ key: 'attacker-key', layer: stolen, description: 'RUN steal', platform: 'linux/amd64' }]);
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === '/v2/') { res.writeHead(200); res.end('{}'); return; }
    if (req.url?.includes('/manifests/')) { res.writeHead(200, { 'content-type': doc.manifest.descriptor.mediaType }); res.end(req.method === 'HEAD' ? undefined : doc.manifest.bytes); return; }
    if (req.url?.endsWith(doc.config.descriptor.digest)) { res.writeHead(200); res.end(doc.config.bytes); return; }
    if (req.method === 'HEAD') { res.writeHead(200, { 'content-length': String(stolen.size) }); res.end(); return; }
    res.writeHead(200); res.end(Buffer.alloc(stolen.size, 0x61));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const index = new RedisCacheIndex(redis, 'attacker-registry');
    await assert.rejects(readCache({ type: 'registry', ref: `${host}/evil/cache:latest`, mode: 'min' }, index, { registry: new RegistryClient({ attempts: 1 }), blobs: shared }), /is not in the cache source/);
    assert.equal(await index.get('attacker-key'), undefined, 'no record was imported');
    assert.ok(seen.some((r) => r.startsWith('GET') && r.includes(stolen.digest)), 'the layer\'s bytes were asked for');
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** A layout read from a directory (the builder reads it from the synced context instead). */
function directoryLayout(root: string): LayoutReader {
  return {
    where: root, read: (path) => readFile(join(root, path)), open: (path) => createReadStream(join(root, path)),
    hasBlob: async (digest) => sha256Digest(await readFile(join(root, 'blobs/sha256', digest.slice('sha256:'.length))).catch(() => Buffer.alloc(0))) === digest,
  };
}

test('an inline cache is read from an image manifest annotation; an image without one is refused', async () => {
  const src = await source('inline');
  const registry = new RegistryClient();
  const repo = { registry: registryService.host, repository: 'inline/app' };
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const { createHash } = await import('node:crypto');
  const configDigest = `sha256:${createHash('sha256').update(configBytes).digest('hex')}` as `sha256:${string}`;
  await registry.pushBlob(repo, { digest: configDigest, size: configBytes.length }, configBytes);
  for (const r of src.records) if (r.layer) await registry.pushBlob(repo, { digest: r.layer.digest as `sha256:${string}`, size: r.layer.size }, () => src.store.openRead(r.layer!.digest));
  const manifest = (annotations?: Record<string, string>) => Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: configBytes.length },
    layers: src.records.filter((r) => r.layer).map((r) => ({ mediaType: r.layer!.mediaType, digest: r.layer!.digest, size: r.layer!.size })),
    ...(annotations ? { annotations } : {}),
  }));
  await registry.putManifest({ ...repo, tag: 'cached' }, manifest({ [INLINE_CACHE_ANNOTATION]: inlineCacheAnnotation(src.records) }), 'application/vnd.oci.image.manifest.v1+json');
  await registry.putManifest({ ...repo, tag: 'plain' }, manifest(), 'application/vnd.oci.image.manifest.v1+json');
  const index = new RedisCacheIndex(redis, 'fresh-inline');
  const fresh = new FsContentStore(join(dir, 'inline-fresh'));
  const read = await readCache({ type: 'registry', ref: `${registryService.host}/inline/app:cached`, mode: 'min' }, index, { registry, blobs: fresh });
  assert.equal(read.added, 3);
  await assert.rejects(readCache({ type: 'registry', ref: `${registryService.host}/inline/app:plain`, mode: 'min' }, index, { registry, blobs: fresh }), /holds no cache: export one with --cache-to/);
});

test('blob leases: leased() unions unexpired leases; release and expiry end them', async () => {
  const leases = new BlobLeases(redis);
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  await leases.lease('build-a', [d('a'), d('b')], 60_000);
  await leases.lease('build-b', [d('b'), d('c')], 60_000);
  await leases.lease('build-short', [d('e')], 60_000);
  assert.deepEqual([...await leases.leased()].sort(), [d('a'), d('b'), d('c'), d('e')]);
  // Leasing again sets the expiry to now + ttl: 1 ms ends the lease as soon as the clock moves.
  await leases.lease('build-short', [], 1);
  const deadline = Date.now() + 10_000;
  while ((await leases.leased()).has(d('e'))) {
    assert.ok(Date.now() < deadline, 'the 1 ms lease expired');
    await new Promise((r) => setTimeout(r, 5));
  }
  // leasedAmong answers the same for the digests asked about (a deleter's look-up).
  assert.deepEqual([...await leases.leasedAmong([d('a'), d('c'), d('e'), d('f')])].sort(), [d('a'), d('c')]);
  assert.deepEqual([...await leases.leasedAmong([])], []);
  await leases.release('build-a');
  assert.deepEqual([...await leases.leased()].sort(), [d('b'), d('c')]);
  await leases.lease('build-b', [d('f')], 60_000);
  assert.deepEqual([...await leases.leased()].sort(), [d('b'), d('c'), d('f')]);
  await leases.release('build-b');
  assert.deepEqual([...await leases.leased()], []);
  assert.equal(await redis.exists(DEFAULT_KEYS.leases.build('build-short')), 0, 'expired lease keys are gone');
});

test('RedisCacheIndex.referencedBlobs lists the layers records reference, across tenants', async () => {
  const d = `sha256:${'9'.repeat(64)}`;
  await new RedisCacheIndex(redis, 'refs-a').put({ key: 'x', layer: { digest: d, diffID: d, size: 1, mediaType: 'm' }, description: '', platform: 'linux/amd64' });
  assert.ok((await RedisCacheIndex.referencedBlobs(redis)).has(d));
  await new RedisCacheIndex(redis, 'refs-a').delete(['x']);
  assert.ok(!(await RedisCacheIndex.referencedBlobs(redis)).has(d));
});
