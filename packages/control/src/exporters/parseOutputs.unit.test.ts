import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageEpochs, parseOutputs } from './index.js';

const output = (type: string, attrs: Record<string, string>) => ({ type, attrs });

test('rewrite-timestamp takes Go bool words on image outputs; the file outputs ignore it; anything else is refused naming the output', () => {
  const parsed = parseOutputs([
    output('image', { 'rewrite-timestamp': 'true' }), output('registry', { name: 'r.example/a:1', 'rewrite-timestamp': '1' }),
    output('oci', { 'rewrite-timestamp': 'False' }), output('docker', {}), output('local', { 'rewrite-timestamp': 'true' }),
  ]);
  assert.deepEqual(parsed.map((o) => o.rewriteTimestamp), [true, true, false, false, false]);
  assert.throws(() => parseOutputs([output('image', {}), output('image', { 'rewrite-timestamp': 'yes' })]),
    /^Error: output 2 \(type=image\): non-bool value specified for rewrite-timestamp: "yes": use true or false$/);
});

test('source-date-epoch (BuildKit\'s exporter attr) takes whole seconds; empty is none; anything else is refused naming the output', () => {
  const parsed = parseOutputs([output('local', { 'source-date-epoch': '1700000000' }), output('tar', { 'source-date-epoch': '0' }), output('local', { 'source-date-epoch': '' }), output('tar', {})]);
  assert.deepEqual(parsed.map((o) => o.sourceDateEpoch), [1_700_000_000, 0, undefined, undefined]);
  assert.throws(() => parseOutputs([output('local', { 'source-date-epoch': '1.5' })]), /^Error: output 1 \(type=local\): invalid source-date-epoch "1.5": use whole seconds since 1970$/);
});

test('image outputs must agree on source-date-epoch (one image per platform); file outputs keep their own', () => {
  assert.equal(parseOutputs([output('image', { 'source-date-epoch': '5' }), output('oci', { 'source-date-epoch': '5' }), output('local', { 'source-date-epoch': '9' })]).length, 3);
  assert.throws(() => parseOutputs([output('local', {}), output('image', { 'source-date-epoch': '5' }), output('docker', {})]),
    /^Error: outputs 2 and 3 ask for different source-date-epoch values \(5 and none\): one build makes one image per platform; give every image output the same value, or build once per output$/);
});

test('imageEpochs: the image output\'s source-date-epoch, else the build arg, dates the image; with both the earlier; layers only with rewrite-timestamp, by the exporter\'s epoch', () => {
  const epochs = (attrs: Record<string, string>, arg?: string, type = 'image') => imageEpochs(parseOutputs([output(type, attrs)]), arg);
  assert.deepEqual(epochs({}), { image: undefined, layers: undefined });
  assert.deepEqual(epochs({}, '100'), { image: 100, layers: undefined });
  assert.deepEqual(epochs({ 'source-date-epoch': '50' }), { image: 50, layers: undefined });
  assert.deepEqual(epochs({ 'source-date-epoch': '50' }, '100'), { image: 50, layers: undefined });
  assert.deepEqual(epochs({ 'source-date-epoch': '200' }, '100'), { image: 100, layers: undefined });
  assert.deepEqual(epochs({ 'source-date-epoch': '' }, '100'), { image: 100, layers: undefined }, 'empty is none: the build arg stays (v0.11.6 parseTime)');
  assert.deepEqual(epochs({ 'source-date-epoch': '200', 'rewrite-timestamp': 'true' }, '100'), { image: 100, layers: 200 });
  assert.deepEqual(epochs({ 'rewrite-timestamp': 'true' }, '100'), { image: 100, layers: 100 });
  assert.deepEqual(epochs({ 'rewrite-timestamp': 'true' }), { image: undefined, layers: undefined });
  assert.deepEqual(epochs({ 'source-date-epoch': '50' }, undefined, 'local'), { image: undefined, layers: undefined }, 'a local output\'s epoch dates its own files only');
});

test('compression, compression-level and force-compression (BuildKit\'s exporter attrs) on image outputs; none given leaves the layers as made; bad values refused naming the output', () => {
  const parsed = parseOutputs([output('image', { compression: 'zstd', 'compression-level': '19', 'force-compression': 'true' }), output('oci', { compression: 'zstd', 'compression-level': '19', 'force-compression': '' }), output('local', { compression: 'bogus' })]);
  assert.deepEqual(parsed.map((o) => o.compression), [{ type: 'zstd', level: 19, force: true }, { type: 'zstd', level: 19, force: true }, undefined]);
  assert.deepEqual(parseOutputs([output('docker', { compression: 'uncompressed', 'compression-level': '3' })])[0].compression, { type: 'uncompressed', force: false });
  assert.deepEqual(parseOutputs([output('image', { 'force-compression': 'true' })])[0].compression, { type: 'gzip', force: true }, 'BuildKit\'s default compression is gzip');
  assert.equal(parseOutputs([output('image', {})])[0].compression, undefined);
  for (const [attrs, error] of [
    [{ compression: 'lz4' }, /^Error: output 1 \(type=image\): unsupported compression type lz4: use gzip, zstd or uncompressed$/],
    [{ compression: 'estargz' }, /^Error: output 1 \(type=image\): compression=estargz is not supported by this builder: use gzip, zstd or uncompressed$/],
    [{ compression: 'gzip', 'compression-level': 'high' }, /^Error: output 1 \(type=image\): non-integer value high specified for compression-level$/],
    [{ compression: 'gzip', 'compression-level': '12' }, /^Error: output 1 \(type=image\): compression-level 12 is out of range for gzip: use 0 to 9$/],
    [{ compression: 'zstd', 'force-compression': 'yes' }, /^Error: output 1 \(type=image\): non-bool value yes specified for force-compression: use true or false$/],
  ] as const) assert.throws(() => parseOutputs([output('image', attrs)]), error);
  assert.throws(() => parseOutputs([output('image', { compression: 'zstd' }), output('oci', {})]), /^Error: outputs 1 and 2 ask for different layer compression: one build makes one image per platform/);
});

test('push-by-digest on image outputs takes Go bool words (empty is true); a tagged name is refused in BuildKit\'s words, as no tag would be pushed', () => {
  const parsed = parseOutputs([output('image', { name: 'r.example/app', push: 'true', 'push-by-digest': 'true' }), output('registry', { name: 'r.example/app', 'push-by-digest': '' }), output('image', { name: 'r.example/app:1', 'push-by-digest': 'false' })]);
  assert.deepEqual(parsed.map((o) => o.pushByDigest ?? false), [true, true, false]);
  assert.throws(() => parseOutputs([output('registry', { name: 'r.example/app,r.example/app:v1', 'push-by-digest': 'true' })]),
    /^Error: output 1 \(type=registry\): can't push tagged ref r\.example\/app:v1 by digest: name the repository only \(push-by-digest pushes no tag\)$/);
  assert.throws(() => parseOutputs([output('registry', { name: 'r.example/app', 'push-by-digest': 'maybe' })]), /^Error: output 1 \(type=registry\): non-bool value maybe specified for push-by-digest: use true or false$/);
});

test('oci-mediatypes takes Go bool words on image outputs (absent: OCI types); image outputs must agree on it', () => {
  assert.deepEqual(parseOutputs([output('image', { 'oci-mediatypes': 'false' }), output('docker', { 'oci-mediatypes': '0' })]).map((o) => o.ociMediaTypes), [false, false]);
  assert.equal(parseOutputs([output('image', {})])[0].ociMediaTypes, undefined);
  assert.throws(() => parseOutputs([output('image', { 'oci-mediatypes': 'false' }), output('oci', {})]), /^Error: outputs 1 and 2 ask for different media types \(oci-mediatypes\)/);
  assert.throws(() => parseOutputs([output('image', { 'oci-mediatypes': 'no' })]), /^Error: output 1 \(type=image\): non-bool value no specified for oci-mediatypes: use true or false$/);
});

test('oci-artifact takes Go bool words on image outputs; true with oci-mediatypes=false is refused in BuildKit\'s words; image outputs must agree on it', () => {
  assert.deepEqual(parseOutputs([output('image', { 'oci-artifact': 'false' })]).map((o) => o.ociArtifact), [false]);
  assert.throws(() => parseOutputs([output('image', { 'oci-artifact': 'true', 'oci-mediatypes': 'false' })]), /^Error: output 1 \(type=image\): exporter option "oci-artifact=true" conflicts with "oci-mediatypes=false"$/);
  assert.throws(() => parseOutputs([output('image', { 'oci-artifact': 'false' }), output('oci', {})]), /^Error: outputs 1 and 2 ask for different attestation forms \(oci-artifact\)/);
});

test('type=oci|docker tar=: false asks for a layout directory; empty is true, as BuildKit; anything else is refused', () => {
  assert.equal(parseOutputs([{ type: 'oci', attrs: { dest: 'x', tar: 'false' } }])[0].layoutDir, true);
  assert.equal(parseOutputs([{ type: 'docker', attrs: { dest: 'x', tar: 'F' } }])[0].layoutDir, true);
  assert.equal(parseOutputs([{ type: 'oci', attrs: { dest: 'x', tar: '' } }])[0].layoutDir, undefined);
  assert.equal(parseOutputs([{ type: 'oci', attrs: { dest: 'x', tar: 'true' } }])[0].layoutDir, undefined);
  assert.equal(parseOutputs([{ type: 'local', attrs: { dest: 'x', tar: 'false' } }])[0].layoutDir, undefined);
  assert.throws(() => parseOutputs([{ type: 'oci', attrs: { dest: 'x', tar: 'nope' } }]), /output 1 \(type=oci\): non-bool value nope specified for tar/);
});

test('type=local|tar platform-split= is a Go bool; attestation-prefix is kept; other outputs ignore both', () => {
  assert.equal(parseOutputs([{ type: 'local', attrs: { dest: 'x', 'platform-split': 'false' } }])[0].platformSplit, false);
  assert.equal(parseOutputs([{ type: 'tar', attrs: { dest: 'x', 'platform-split': '1', 'attestation-prefix': 'a-' } }])[0].attestationPrefix, 'a-');
  assert.equal(parseOutputs([{ type: 'oci', attrs: { dest: 'x', 'platform-split': 'false' } }])[0].platformSplit, undefined);
  assert.throws(() => parseOutputs([{ type: 'local', attrs: { dest: 'x', 'platform-split': 'no' } }]), /output 1 \(type=local\): non-bool value for platform-split: no/);
  assert.throws(() => parseOutputs([{ type: 'local', attrs: { dest: 'x', mode: 'sync' } }]), /output 1 \(type=local\): invalid local exporter mode "sync"/);
  assert.equal(parseOutputs([{ type: 'local', attrs: { dest: 'x', mode: 'delete' } }]).length, 1);
});
