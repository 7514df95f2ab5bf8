// A layer's diffID is a claim until its blob is unpacked and hashed, and diffIDs are public
// (every image config lists them; so do `docker inspect` and SBOMs). A worker's unpacked layers
// serve every tenant, so a snapshot must never be handed out on the strength of a claimed diffID:
// an attacker's image listing a harmless blob of its own with another tenant's diffID must not
// run on that tenant's filesystem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { solve } from '../grpcClient.js';
import { clusterFixture } from './clusterFixture.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster whose worker runs runc)';
const env = clusterFixture({ workers: 1, tenants: ['victim', 'attacker'] }, 'claimed-diffids');

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const skopeoJson = (ref: string, ...flags: string[]) => JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', ...flags, `docker://${ref}`], { encoding: 'utf8' }));

test('the attacker: an image whose config claims another tenant\'s layer diffID for a blob of its own is refused, and never runs on that tenant\'s files', { skip, timeout: 180_000 }, async () => {
  const { cluster } = env;
  const secret = `victim-secret-${randomBytes(8).toString('hex')}`;
  const victimRef = `${cluster.registry.host}/victim/app:1`;
  const victim = await solve(cluster, env.context('victim', `FROM ${cluster.busybox.reference}\nRUN echo ${secret} > /secret.txt\n`),
    { platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name: victimRef, push: 'true' } }] }, { token: cluster.tokens.victim });
  assert.equal(victim.error, undefined, victim.error?.message);
  const victimDiffIds: string[] = skopeoJson(victimRef, '--config', '--raw').rootfs.diff_ids;

  // The attacker's image: busybox's layers plus an empty tar of its own, whose config names the
  // victim's RUN layer's diffID for it.
  const busyboxRepo = cluster.busybox.reference.replace(/^[^/]+\//, '').replace(/:[^:/]+$/, '');
  const busybox = `${cluster.registry.host}/${busyboxRepo}@${cluster.busybox.manifests['linux/amd64']}`;
  const busyboxManifest = skopeoJson(busybox, '--raw');
  const layout = join(env.context('layout', ''), 'oci');
  mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
  const put = (b: Buffer) => { writeFileSync(join(layout, 'blobs/sha256', sha256(b).slice(7)), b); return sha256(b); };
  for (const l of busyboxManifest.layers) {
    put(Buffer.from(await (await fetch(`http://${cluster.registry.host}/v2/${busyboxRepo}/blobs/${l.digest}`)).arrayBuffer()));
  }
  const own = gzipSync(Buffer.alloc(1024));
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: {},
    rootfs: { type: 'layers', diff_ids: victimDiffIds }, // busybox's, then the victim's RUN layer's
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
    layers: [
      ...busyboxManifest.layers.map((l: { mediaType: string; digest: string; size: number }) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
      { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: put(own), size: own.length },
    ],
  }));
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: put(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
  const lyingRef = `${cluster.registry.host}/attacker/lying:1`;
  execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${lyingRef}`]);

  const attack = await solve(cluster, env.context('attacker', `FROM ${lyingRef}\nRUN cat /secret.txt || echo no secret here\n`), { platforms: ['linux/amd64'] }, { token: cluster.tokens.attacker });
  assert.ok(!attack.logs.includes(secret), 'the attacker\'s step read the victim\'s file');
  assert.ok(attack.error, 'the lying image is refused');
  assert.match(attack.error.message, new RegExp(`a layer has diffID sha256:[0-9a-f]{64} but ${victimDiffIds.at(-1)} was expected`));
  assert.ok(!attack.error.message.includes('\n'), attack.error.message);
});
