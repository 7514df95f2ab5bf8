import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient, sha256Digest, type ImageIndex } from '@buildyard/oci';
import { seedBusybox, startRegistry } from '@buildyard/testkit';
import { createIndex, inspectImage } from './imagetools.js';

test('imagetools inspect and create against a real registry', async (t) => {
  const reg = await startRegistry();
  t.after(() => reg.stop());
  const seeded = await seedBusybox(reg);
  const client = new RegistryClient({ dockerConfig: false });

  await t.test('inspect shows the index and its platforms; --raw is the exact bytes', async () => {
    const res = await inspectImage(client, seeded.reference);
    assert.equal(sha256Digest(res.raw), seeded.indexDigest);
    const lines = res.text.split('\n');
    assert.equal(lines[0], `Name:      ${seeded.reference}`);
    assert.equal(lines[2], `Digest:    ${seeded.indexDigest}`);
    assert.ok(lines.includes(`  Name:        ${reg.host}/library/busybox@${seeded.manifests['linux/arm64']}`), res.text);
    assert.ok(lines.includes('  Platform:    linux/amd64') && lines.some((l) => l.startsWith('  Platform:    linux/arm64')), res.text);
    const single = await inspectImage(client, `${reg.host}/library/busybox@${seeded.manifests['linux/amd64']}`);
    assert.match(single.text, /^Platform: {2}linux\/amd64$/m);
  });

  await t.test('inspect of an attestation manifest (an OCI artifact) names its artifact type and subject', async () => {
    const empty = Buffer.from('{}');
    await client.pushBlob(`${reg.host}/library/busybox`, { digest: sha256Digest(empty), size: 2 }, empty);
    const subject = seeded.manifests['linux/amd64'];
    const artifact = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.docker.attestation.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest(empty), size: 2, data: 'e30=' }, layers: [],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: 1 },
    }));
    const digest = await client.putManifest(`${reg.host}/library/busybox@${sha256Digest(artifact)}`, artifact, 'application/vnd.oci.image.manifest.v1+json');
    const res = await inspectImage(client, `${reg.host}/library/busybox@${digest}`);
    assert.match(res.text, /^ArtifactType: application\/vnd\.docker\.attestation\.manifest\.v1\+json$/m);
    assert.match(res.text, new RegExp(`^Subject: {3}${subject}$`, 'm'));
    assert.doesNotMatch(res.text, /Platform/);
  });

  await t.test('create merges per-platform manifests into one index in another repository', async () => {
    const sources = ['linux/amd64', 'linux/arm64'].map((p) => `${reg.host}/library/busybox@${seeded.manifests[p]}`);
    const progress: string[] = [];
    const res = await createIndex(client, { tags: [`${reg.host}/merged/app:v1`, `${reg.host}/merged/app:latest`], sources, onProgress: (l) => progress.push(l) });
    assert.deepEqual(res.index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`), ['linux/amd64', 'linux/arm64']);
    assert.deepEqual(res.index.manifests.map((m) => m.digest), [seeded.manifests['linux/amd64'], seeded.manifests['linux/arm64']]);
    assert.ok(progress.some((l) => l.startsWith('mounted ')), `blobs are mounted across repositories: ${progress.join('; ')}`);
    for (const tag of ['v1', 'latest']) {
      const got = await client.getManifest(`${reg.host}/merged/app:${tag}`);
      assert.equal(got.digest, res.digest);
      assert.equal((got.manifest as ImageIndex).manifests.length, 2);
    }
    // The new repository holds everything a pull needs.
    const arm = await client.resolve(`${reg.host}/merged/app:v1`, 'linux/arm64');
    assert.equal(arm.manifestDigest, seeded.manifests['linux/arm64']);
    for (const l of arm.manifest.layers) assert.equal(await client.blobExists(`${reg.host}/merged/app`, l.digest), true);
  });

  await t.test('create copies blobs to another registry and takes whole indexes as sources', async (tt) => {
    const other = await startRegistry();
    tt.after(() => other.stop());
    const res = await createIndex(client, { tags: [`${other.host}/copy/busybox:1`], sources: [seeded.reference] });
    const amd = await client.resolve(`${other.host}/copy/busybox:1`, 'linux/amd64');
    assert.equal(amd.manifestDigest, seeded.manifests['linux/amd64']);
    assert.equal(res.index.manifests.length, 2);
  });

  await t.test('a missing source is a one-line registry error', async () => {
    await assert.rejects(createIndex(client, { tags: [`${reg.host}/x/y:1`], sources: [`${reg.host}/does/not:exist`] }), /HTTP 404/);
  });
});
