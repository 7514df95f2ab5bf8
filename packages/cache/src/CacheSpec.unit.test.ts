import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCacheSpecs, encodeCacheManifest, decodeCacheConfig, cacheConfigOf, CACHE_CONFIG_MEDIA_TYPE, type CacheDocument, type ExportedCacheRecord } from './index.js';
import { parseCacheDocument } from './CacheManifest.js';

test('cache specs parse buildx syntax with defaults', () => {
  assert.deepEqual(parseCacheSpecs([{ type: 'registry', attrs: { ref: 'r:5000/c:t', mode: 'max' } }, { type: 'local', attrs: {} }, { type: 'inline', attrs: {} }], 'to'), [
    { type: 'registry', ref: 'r:5000/c:t', mode: 'max' }, { type: 'local', tag: 'latest', mode: 'min' }, { type: 'inline', mode: 'min' },
  ]);
  // A local import names the context id the client synced the directory under.
  const context = `sha256:${'c'.repeat(64)}`;
  assert.deepEqual(parseCacheSpecs([{ type: 'local', attrs: { context, tag: 'x' } }], 'from'), [{ type: 'local', contextId: context, tag: 'x', mode: 'min' }]);
});

test('bad cache specs give one-line errors naming the spec and the fix', () => {
  const cases: Array<[Parameters<typeof parseCacheSpecs>, RegExp]> = [
    [[[{ type: 's3', attrs: {} }], 'to'], /^--cache-to #1 \(type=s3\): unknown cache type "s3": use one of registry, local, inline$/],
    [[[{ type: 'registry', attrs: {} }], 'from'], /--cache-from #1 \(type=registry\): missing ref: add ref=REGISTRY\/REPO:TAG/],
    // The builder never reads or writes paths of its own.
    [[[{ type: 'local', attrs: { dest: '/srv/buildyard' } }], 'to'], /never reads or writes its own files \(dest=\/srv\/buildyard\)/],
    [[[{ type: 'local', attrs: { src: '/etc' } }], 'from'], /never reads or writes its own files \(src=\/etc\)/],
    [[[{ type: 'local', attrs: {} }], 'from'], /missing context=ID/],
    [[[{ type: 'local', attrs: { context: '../x' } }], 'from'], /missing context=ID/],
    [[[{ type: 'registry', attrs: { ref: 'a', mode: 'all' } }], 'to'], /unknown mode "all"/],
    [[[{ type: 'inline', attrs: { mode: 'max' } }], 'to'], /inline cache holds only mode=min/],
    [[[{ type: 'inline', attrs: {} }], 'from'], /use --cache-from type=registry,ref=IMAGE/],
    [[[{ type: 'registry', attrs: { ref: 'a', 'image-manifest': 'yes' } }], 'to'], /image-manifest=yes: use image-manifest=true or false/],
  ];
  for (const [args, re] of cases) {
    assert.throws(() => parseCacheSpecs(...args), (err: Error) => re.test(err.message) && !err.message.includes('\n'));
  }
});

const layer = (c: string) => ({ digest: `sha256:${c.repeat(64)}`, diffID: `sha256:${'d'.repeat(64)}`, size: 10, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
const records: ExportedCacheRecord[] = [
  { key: 'k2', layer: layer('b'), description: 'RUN b', platform: 'linux/arm64' },
  { key: 'k1', layer: layer('a'), description: 'RUN a', platform: 'linux/amd64' },
  { key: 'k3', layer: null, description: 'WORKDIR', platform: 'linux/amd64' },
  { key: 'k4', layer: layer('a'), description: 'RUN a again', platform: 'linux/amd64' },
];

test('the cache is BuildKit\'s document: an OCI index of each layer once and the cacheconfig.v0 blob last; its config round-trips the records', () => {
  const enc = encodeCacheManifest(records);
  assert.deepEqual(enc.layers.map((l) => l.digest), [layer('a').digest, layer('b').digest]);
  const index = JSON.parse(enc.manifest.bytes.toString()) as CacheDocument & { manifests: Array<{ mediaType: string; digest: string; annotations?: Record<string, string> }> };
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.deepEqual(index.manifests.map((m) => m.mediaType), [layer('a').mediaType, layer('b').mediaType, CACHE_CONFIG_MEDIA_TYPE]);
  assert.equal(index.manifests[0].annotations?.['containerd.io/uncompressed'], layer('a').diffID);
  assert.equal(cacheConfigOf(index)?.config.digest, enc.config.descriptor.digest);
  // BuildKit's CacheConfig fields (cache/remotecache/v1/types): records keyed by digest, results by layer index.
  const config = JSON.parse(enc.config.bytes.toString()) as { layers: Array<{ blob: string; parent: number }>; records: Array<{ digest: string; layers?: Array<{ layer: number }> }> };
  assert.deepEqual(config.layers.map((l) => [l.blob, l.parent]), [[layer('a').digest, -1], [layer('b').digest, -1]]);
  assert.ok(config.records.every((r) => /^sha256:[0-9a-f]{64}$/.test(r.digest)));
  assert.deepEqual(config.records.map((r) => r.layers?.[0]?.layer), [0, 1, undefined, 0]);
  const back = decodeCacheConfig(enc.config.bytes.toString(), 'test', cacheConfigOf(index)!.descriptors);
  assert.equal(back.foreign, 0);
  assert.deepEqual(back.records.map((r) => r.key), ['k1', 'k2', 'k3', 'k4']);
  assert.deepEqual(back.records.find((r) => r.key === 'k2'), records[0]);
  // Order of input does not change the digest.
  assert.equal(encodeCacheManifest([...records].reverse()).manifest.descriptor.digest, enc.manifest.descriptor.digest);
});

test('a BuildKit cache config\'s own records are counted as foreign, never taken for Buildyard keys; earlier Buildyard configs still read', () => {
  const buildkitd = { layers: [{ blob: layer('a').digest, parent: -1 }, { blob: layer('b').digest }], records: [
    { digest: `sha256:${'1'.repeat(64)}`, layers: [{ layer: 1, createdAt: '2024-01-01T00:00:00Z' }] },
    { digest: `sha256:${'2'.repeat(64)}`, inputs: [[{ selector: 'sha256:x', link: 0 }]] },
  ] };
  assert.deepEqual(decodeCacheConfig(JSON.stringify(buildkitd), 'bk'), { records: [], foreign: 2 });
  const legacy = { version: 1, records: [{ key: 'k1', layer: layer('a'), description: 'RUN a', platform: 'linux/amd64' }] };
  assert.deepEqual(decodeCacheConfig(JSON.stringify(legacy), 'old'), { records: [records[1]], foreign: 0 });
});

test('foreign or malformed cache configs are refused', () => {
  assert.throws(() => decodeCacheConfig('{"version":2,"records":[]}', 'r/x:y'), /cache at r\/x:y is not a buildyard cache/);
  assert.throws(() => decodeCacheConfig('nope', 'r'), /not valid JSON/);
  assert.throws(() => decodeCacheConfig('{"records":{}}', 'r'), /not a BuildKit cache config/);
  assert.throws(() => decodeCacheConfig(JSON.stringify({ version: 1, records: [{ key: 'k', platform: 'p', layer: { digest: '../../etc' } }] }), 'r'), /malformed record/);
  // A Buildyard record naming a layer that is no digest, or a chain (its result must be its own layer).
  const ext = { 'dev.buildyard.record': { key: 'k', platform: 'p', description: '' } };
  assert.throws(() => decodeCacheConfig(JSON.stringify({ layers: [{ blob: '../../etc', parent: -1, annotations: { diffID: layer('a').diffID, size: 1, mediaType: 'x' } }], records: [{ ...ext, layers: [{ layer: 0 }] }] }), 'r'), /malformed record/);
  assert.throws(() => decodeCacheConfig(JSON.stringify({ layers: [{ blob: layer('a').digest, parent: -1 }, { blob: layer('b').digest, annotations: { diffID: layer('a').diffID, size: 1, mediaType: 'x' } }], records: [{ ...ext, layers: [{ layer: 1 }] }] }), 'r'), /malformed record/);
});

test('image-manifest=true (BuildKit >= 0.12): the cache is an OCI image manifest whose config is the cacheconfig, its layers the blobs', () => {
  assert.deepEqual(parseCacheSpecs([{ type: 'registry', attrs: { ref: 'r/c:1', 'image-manifest': 'true' } }], 'to'), [{ type: 'registry', ref: 'r/c:1', mode: 'min', imageManifest: true }]);
  const enc = encodeCacheManifest(records, { imageManifest: true });
  const doc = JSON.parse(enc.manifest.bytes.toString()) as CacheDocument & { layers: Array<{ digest: string }> };
  assert.equal(enc.manifest.descriptor.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(doc.config?.mediaType, CACHE_CONFIG_MEDIA_TYPE);
  assert.deepEqual(doc.layers.map((l) => l.digest), [layer('a').digest, layer('b').digest]);
  // The config is the index form's, byte for byte: only the document around it differs.
  assert.equal(enc.config.descriptor.digest, encodeCacheManifest(records).config.descriptor.digest);
  const found = cacheConfigOf(doc)!;
  assert.deepEqual(decodeCacheConfig(enc.config.bytes.toString(), 'm', found.descriptors).records.map((r) => r.key), ['k1', 'k2', 'k3', 'k4']);
});

test('a cache document read from the network is validated, not cast: malformed ones fail in one line naming the ref', () => {
  const enc = encodeCacheManifest([{ key: 'k', layer: null, description: 'd', platform: 'linux/amd64' }]);
  const good = JSON.parse(enc.manifest.bytes.toString()) as unknown;
  assert.deepEqual(parseCacheDocument(good, 'reg:5000/c:t'), good);
  // An image manifest read for its inline cache keeps fields the cache code does not know.
  const image = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2, platform: { os: 'linux', architecture: 'amd64' } }, layers: [] };
  assert.deepEqual(parseCacheDocument(image, 'reg:5000/app:1'), image);
  const ref = 'reg:5000/c:t';
  for (const [doc, field] of [
    [{ manifests: [{ mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: 'sha256:nothex', size: 3 }] }, 'manifests.0.digest'],
    [{ manifests: { mediaType: CACHE_CONFIG_MEDIA_TYPE } }, 'manifests'],
    [{ config: { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: `sha256:${'b'.repeat(64)}`, size: -1 } }, 'config.size'],
    [{ annotations: { 'dev.buildyard.cache.v1': 42 } }, 'annotations.dev.buildyard.cache.v1'],
    ['not an object', 'document'],
  ] as const) {
    assert.throws(() => parseCacheDocument(doc, ref), (err: Error) => {
      assert.ok(err.message.startsWith(`cache at ${ref} is malformed (${field}: `), err.message);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
  }
});
