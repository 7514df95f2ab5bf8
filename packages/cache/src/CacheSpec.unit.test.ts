import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCacheSpecs, encodeCacheManifest, decodeCacheRecords, type ExportedCacheRecord } from './index.js';

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

test('the cache manifest lists each layer once and its config round-trips the records', () => {
  const enc = encodeCacheManifest(records);
  assert.deepEqual(enc.layers.map((l) => l.digest), [layer('a').digest, layer('b').digest]);
  const manifest = JSON.parse(enc.manifest.bytes.toString()) as { config: { digest: string }; layers: unknown[] };
  assert.equal(manifest.config.digest, enc.config.descriptor.digest);
  assert.equal(manifest.layers.length, 2);
  const back = decodeCacheRecords(enc.config.bytes.toString(), 'test');
  assert.deepEqual(back.map((r) => r.key), ['k1', 'k2', 'k3', 'k4']);
  assert.deepEqual(back.find((r) => r.key === 'k2'), records[0]);
  // Order of input does not change the digest.
  assert.equal(encodeCacheManifest([...records].reverse()).manifest.descriptor.digest, enc.manifest.descriptor.digest);
});

test('foreign or malformed cache configs are refused', () => {
  assert.throws(() => decodeCacheRecords('{"version":2,"records":[]}', 'r/x:y'), /cache at r\/x:y is not a buildyard cache/);
  assert.throws(() => decodeCacheRecords('nope', 'r'), /not valid JSON/);
  assert.throws(() => decodeCacheRecords(JSON.stringify({ version: 1, records: [{ key: 'k', platform: 'p', layer: { digest: '../../etc' } }] }), 'r'), /malformed record/);
});
