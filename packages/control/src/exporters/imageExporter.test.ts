// pushImage against a real registry (through testkit's recording proxy): a push of an image the
// tag already names is answered by one HEAD, as a no-change rebuild's push should be.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MediaTypes, RegistryClient } from '@buildyard/oci';
import type { AssembledImage } from '@buildyard/solver';
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
