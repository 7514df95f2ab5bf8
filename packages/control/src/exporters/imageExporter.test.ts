// pushImage against a real registry (through testkit's recording proxy): a push of an image the
// tag already names is answered by one HEAD, as a no-change rebuild's push should be; a
// multi-platform push sends every blob once, all before the manifests, the index last.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsContentStore, MediaTypes, RegistryClient } from '@buildyard/oci';
import { assembleIndex, type AssembledImage } from '@buildyard/solver';
import { startRegistry, startRegistryProxy, type RegistryService, type RegistryProxy } from '@buildyard/testkit';
import { pushImage } from './imageExporter.js';

let registry: RegistryService | undefined;
let proxy: RegistryProxy | undefined;
after(async () => { await proxy?.stop(); await registry?.stop(); });

function blob<T>(json: T, mediaType: string) {
  const bytes = Buffer.from(JSON.stringify(json));
  return { json, bytes, descriptor: { mediaType, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as `sha256:${string}`, size: bytes.length } };
}

test('pushing an image the tag already names sends one HEAD and nothing else; another image is pushed in full', async () => {
  registry = await startRegistry();
  proxy = await startRegistryProxy({ upstream: registry.host, mode: 'plain' });
  const client = new RegistryClient({ dockerConfig: false });
  const image = (salt: string): AssembledImage => {
    const config = blob({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: [`SALT=${salt}`] } }, MediaTypes.OciConfig);
    const manifest = blob({ schemaVersion: 2 as const, mediaType: MediaTypes.OciManifest, config: config.descriptor, layers: [] }, MediaTypes.OciManifest);
    return { platform: 'linux/amd64', config: config as AssembledImage['config'], manifest, layers: [] };
  };
  const name = `${proxy.host}/exporter/app:1`;
  const first = await pushImage(client, [image('a')], undefined, [name]);
  const afterFirst = proxy.requests.length;
  assert.ok(proxy.requests.some((r) => r.method === 'PUT' && r.path.includes('/manifests/1')), 'the first push puts the manifest');

  const again = await pushImage(client, [image('a')], undefined, [name]);
  assert.deepEqual(again, first);
  assert.deepEqual(proxy.requests.slice(afterFirst).map((r) => `${r.method} ${r.status}`), ['HEAD 200'], 'one HEAD answers the push');

  const before = proxy.requests.length;
  const changed = await pushImage(client, [image('b')], undefined, [name]);
  assert.notDeepEqual(changed, first);
  assert.ok(proxy.requests.slice(before).some((r) => r.method === 'PUT' && r.path.includes('/manifests/1')), 'a different image is pushed');
});

test('a multi-platform push sends each blob once, every blob before any manifest, and the index last', async () => {
  registry ??= await startRegistry();
  const recorder = await startRegistryProxy({ upstream: registry.host, mode: 'plain' });
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-push-'));
  try {
    const store = new FsContentStore(dir);
    const layer = async (text: string) => {
      const bytes = Buffer.from(text);
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}` as `sha256:${string}`;
      await store.put(bytes, digest);
      return { mediaType: MediaTypes.OciLayerGzip, digest, size: bytes.length, diffID: digest };
    };
    const shared = await layer('a layer both platforms have');
    const image = async (architecture: string): Promise<AssembledImage> => {
      const own = await layer(`only ${architecture}`);
      const config = blob({ architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [shared.diffID, own.diffID] } }, MediaTypes.OciConfig);
      const manifest = blob({ schemaVersion: 2 as const, mediaType: MediaTypes.OciManifest, config: config.descriptor, layers: [shared, own].map(({ diffID: _, ...d }) => d) }, MediaTypes.OciManifest);
      return { platform: `linux/${architecture}`, config: config as AssembledImage['config'], manifest, layers: [shared, own] };
    };
    const images = [await image('amd64'), await image('arm64')];
    const index = assembleIndex(images);
    await pushImage(new RegistryClient({ dockerConfig: false, store }), images, index, [`${recorder.host}/exporter/multi:1`]);

    const sent = recorder.requests.filter((r) => r.method === 'PUT');
    const blobPuts = sent.filter((r) => r.path.includes('/blobs/uploads/'));
    const uploaded = blobPuts.map((r) => new URL(r.path, 'http://x').searchParams.get('digest'));
    assert.equal(new Set(uploaded).size, uploaded.length, `a blob was uploaded twice: ${uploaded.join(' ')}`);
    assert.deepEqual(new Set(uploaded), new Set([shared.digest, ...images.flatMap((i) => [i.layers[1]!.digest, i.config.descriptor.digest])]));
    const manifestPuts = sent.filter((r) => r.path.includes('/manifests/'));
    assert.ok(sent.indexOf(blobPuts.at(-1)!) < sent.indexOf(manifestPuts[0]!), 'every blob is in place before the first manifest');
    assert.deepEqual(manifestPuts.map((r) => r.path.split('/manifests/')[1]).sort(), [...images.map((i) => i.manifest.descriptor.digest), '1'].sort());
    assert.equal(manifestPuts.at(-1)!.path, '/v2/exporter/multi/manifests/1', 'the index goes last, under the tag');
  } finally {
    await recorder.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
