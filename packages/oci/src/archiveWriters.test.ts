import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRegistryFixture } from '@buildyard/testkit';
import { RegistryClient } from './RegistryClient.js';
import { FsContentStore, DigestMismatchError } from './FsContentStore.js';
import { writeOciLayout, ociLayoutEntry } from './archiveWriters.js';
import { sha256Digest } from './digest.js';
import { MediaTypes } from './mediaTypes.js';
import type { ImageIndex } from './types.js';
import { execFileP, makeImage } from './imageFixtures.test-util.js';

let store: FsContentStore;
const fx = seededRegistryFixture('oci-writers-test', async ({ busybox, dir }) => {
  store = new FsContentStore(join(dir, 'store'));
  // Pull busybox (index, both manifests, configs, layers) into the store.
  const client = new RegistryClient({ store, dockerConfig: false });
  const top = await client.getManifest(busybox.reference);
  await store.put(top.bytes, top.digest);
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    const r = await client.resolve(busybox.reference, platform);
    await store.put(r.manifestBytes, r.manifestDigest);
    for (const d of [r.manifest.config, ...r.manifest.layers]) await client.pullBlob(r.reference, d);
  }
});

const finished = (ws: import('node:fs').WriteStream) => new Promise<void>((resolve, reject) => { if (ws.closed) resolve(); else { ws.on('close', resolve); ws.on('error', reject); } });

function busyboxIndex(tag: string): ImageIndex {
  return {
    schemaVersion: 2,
    manifests: [ociLayoutEntry({ mediaType: MediaTypes.OciIndex, digest: fx.busybox.indexDigest as `sha256:${string}`, size: 0 }, tag)],
  };
}

test('OCI layout directory: umoci and skopeo read it', async () => {
  const size = await store.size(fx.busybox.indexDigest);
  const index = busyboxIndex('v1');
  index.manifests[0].size = size;
  const dir = join(fx.dir, 'layout');
  await writeOciLayout(dir, { index, store });
  assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const written = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
  assert.equal(written.manifests[0].annotations?.['org.opencontainers.image.ref.name'], 'v1');
  const { stdout: ls } = await execFileP('umoci', ['ls', '--layout', dir]);
  assert.deepEqual(ls.trim().split('\n'), ['v1']);
  const { stdout } = await execFileP('skopeo', ['inspect', '--override-arch', 'arm64', `oci:${dir}:v1`]);
  assert.equal(JSON.parse(stdout).Architecture, 'arm64');
  const { stdout: raw } = await execFileP('skopeo', ['inspect', '--raw', `oci:${dir}:v1`], { encoding: 'buffer' });
  assert.equal(sha256Digest(raw), fx.busybox.indexDigest);
  // Writing again into the same directory is idempotent.
  await writeOciLayout(dir, { index, store });
});

test('OCI layout tar: skopeo reads it', async () => {
  const img = await makeImage('amd64', { 'a.txt': 'layout tar\n' });
  for (const b of [img.layer, img.config, img.manifest]) await store.put(b);
  const index: ImageIndex = { schemaVersion: 2, manifests: [ociLayoutEntry(img.manifestDesc, 'single')] };
  const file = join(fx.dir, 'layout.tar');
  const ws = createWriteStream(file);
  await writeOciLayout(ws, { index, store });
  await finished(ws);
  const { stdout } = await execFileP('skopeo', ['inspect', '--raw', `oci-archive:${file}:single`], { encoding: 'buffer' });
  assert.deepEqual(stdout, img.manifest);
  const { stdout: listing } = await execFileP('tar', ['-tf', file]);
  assert.ok(listing.split('\n').includes(`blobs/sha256/${img.layerDesc.digest.slice(7)}`));
});

test('missing or corrupt blobs fail the write', async () => {
  const img = await makeImage('arm64', { 'missing.txt': 'not stored' });
  await store.put(img.manifest);
  await assert.rejects(writeOciLayout(join(fx.dir, 'bad-layout'), { index: { schemaVersion: 2, manifests: [img.manifestDesc] }, store }), /blob sha256:[0-9a-f]+ \(application\/vnd.oci.image.config.v1\+json\) referenced by sha256:.* is not in the content store/);

  // A blob whose bytes on disk do not match its name.
  const { writeFile } = await import('node:fs/promises');
  await store.put(img.config);
  await store.put(img.layer);
  await writeFile(store.path(img.layerDesc.digest), Buffer.from('tampered'));
  await assert.rejects(writeOciLayout(join(fx.dir, 'bad-layout2'), { index: { schemaVersion: 2, manifests: [img.manifestDesc] }, store }), DigestMismatchError);
  await store.delete(img.layerDesc.digest);
});

test('docker archive (an OCI layout tar with docker load\'s manifest.json, as containerd\'s exporter): sorted entries, fixed modes; skopeo reads it', async () => {
  const client = new RegistryClient({ store, dockerConfig: false });
  const bb = await client.resolve(fx.busybox.reference, 'linux/amd64');
  const img = await makeImage('arm64', { 'b.txt': 'docker archive\n' });
  for (const b of [img.layer, img.config, img.manifest]) await store.put(b);
  const bbDesc = { mediaType: bb.manifest.mediaType ?? MediaTypes.OciManifest, digest: bb.manifestDigest, size: bb.manifestBytes.length };
  const file = join(fx.dir, 'images.tar');
  const ws = createWriteStream(file);
  await writeOciLayout(ws, {
    index: { schemaVersion: 2, manifests: [
      ociLayoutEntry(bbDesc, 'latest', 'docker.io/library/busybox:latest'),
      ociLayoutEntry(bbDesc, 'amd64', `${fx.registry.host}/library/busybox:amd64`),
      ociLayoutEntry(img.manifestDesc, '1', 'docker.io/me/tiny:1'),
    ] },
    store,
    dockerManifest: true,
  });
  await finished(ws);
  const { stdout: listing } = await execFileP('tar', ['-tvf', file]);
  const lines = listing.trim().split('\n');
  const names = lines.map((l) => l.split(/\s+/).pop()!);
  assert.deepEqual(names, [...names].sort(), 'entries sorted by name');
  assert.deepEqual([names[0], names[1], names.at(-3), names.at(-2), names.at(-1)], ['blobs/', 'blobs/sha256/', 'index.json', 'manifest.json', 'oci-layout']);
  assert.ok(lines.filter((l) => l.includes('blobs/sha256/') && !l.endsWith('/')).every((l) => l.startsWith('-r--r--r--')), 'blobs are read-only');
  const { stdout: manifestJson } = await execFileP('tar', ['-xOf', file, 'manifest.json']);
  const manifest = JSON.parse(manifestJson) as { Config: string; RepoTags: string[]; Layers: string[] }[];
  assert.deepEqual(manifest[0].RepoTags, ['busybox:latest', `${fx.registry.host}/library/busybox:amd64`]);
  assert.deepEqual(manifest[1], { Config: `blobs/sha256/${img.configDesc.digest.slice(7)}`, RepoTags: ['me/tiny:1'], Layers: [`blobs/sha256/${img.layerDesc.digest.slice(7)}`] });
  const { stdout } = await execFileP('skopeo', ['inspect', `docker-archive:${file}:me/tiny:1`]);
  const info = JSON.parse(stdout) as { Architecture: string; Layers: string[] };
  assert.equal(info.Architecture, 'arm64');
  const { stdout: bbInfo } = await execFileP('skopeo', ['inspect', `docker-archive:${file}:busybox:latest`]);
  assert.equal(JSON.parse(bbInfo).Architecture, 'amd64');
  const { stdout: index } = await execFileP('tar', ['-xOf', file, 'index.json']);
  assert.match(index, /^\{"schemaVersion":2,"mediaType":"application\/vnd\.oci\.image\.index\.v1\+json","manifests":\[\{"mediaType":/, 'compact, in Go\'s field order');
});
