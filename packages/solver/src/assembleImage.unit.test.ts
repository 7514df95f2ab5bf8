// What an image says: its platform (the one asked for, as BuildKit's dockerfile2llb, else its final stage's) and its times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StageResult } from '@buildyard/contracts';
import { assembleImage } from './assembleImage.js';

const pinnedToArm64: StageResult = {
  stageId: 'linux/amd64#0', platform: 'linux/arm64', layers: [], history: [{ created_by: 'RUN true', created: '2026-01-01T00:00:00Z' }],
  config: { Cmd: ['sh'] }, cacheKey: 'k', verticesTotal: 1, verticesCached: 0,
};

test('an amd64 build whose final stage is FROM --platform=linux/arm64 says amd64 when amd64 was asked for, arm64 when no platform was', () => {
  const asked = assembleImage(pinnedToArm64, { targetPlatform: 'linux/amd64' });
  assert.deepEqual([asked.config.json.os, asked.config.json.architecture, asked.manifest.descriptor.platform, asked.platform], ['linux', 'amd64', { architecture: 'amd64', os: 'linux' }, 'linux/amd64']);
  const implicit = assembleImage(pinnedToArm64);
  assert.deepEqual([implicit.config.json.architecture, implicit.manifest.descriptor.platform, implicit.platform], ['arm64', { architecture: 'arm64', os: 'linux' }, 'linux/arm64']);
});

test('SOURCE_DATE_EPOCH clamps the history as BuildKit: later or missing times say the epoch, older ones (the base image\'s) stay; the image is as old as its last entry', () => {
  const epoch = '2020-01-01T00:00:00.000Z';
  const built: StageResult = {
    ...pinnedToArm64,
    history: [
      { created_by: 'base', created: '2019-05-05T00:00:00Z' },
      { created_by: 'RUN make', created: '2026-01-01T00:00:00Z' },
      { created_by: 'ENV A=1', empty_layer: true },
    ],
  };
  const pinned = assembleImage(built, { created: epoch }).config.json;
  assert.deepEqual(pinned.history?.map((h) => h.created), ['2019-05-05T00:00:00Z', epoch, epoch]);
  assert.equal(pinned.created, epoch);
  const older = assembleImage({ ...built, history: built.history.slice(0, 1) }, { created: epoch }).config.json;
  assert.equal(older.created, '2019-05-05T00:00:00Z', 'nothing newer than the base: the base\'s time');
  // Without it, metadata steps take the layer time before them (normalizeLayersAndHistory).
  assert.deepEqual(assembleImage(built).config.json.history?.map((h) => h.created), ['2019-05-05T00:00:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z']);
});

test('the base image\'s history entries keep their times under SOURCE_DATE_EPOCH, even newer ones (current BuildKit, moby/buildkit#4614); the image is as old as its last entry', () => {
  const epoch = '2020-01-01T00:00:00.000Z';
  const base = [{ created_by: 'base 1', created: '2019-05-05T00:00:00Z' }, { created_by: 'base 2', created: '2025-05-05T00:00:00Z' }];
  const built: StageResult = { ...pinnedToArm64, history: [...base, { created_by: 'RUN make', created: '2026-01-01T00:00:00Z' }] };
  const image = assembleImage(built, { created: epoch, baseHistory: 2 }).config.json;
  assert.deepEqual(image.history?.map((h) => h.created), ['2019-05-05T00:00:00Z', '2025-05-05T00:00:00Z', epoch]);
  assert.equal(image.created, epoch);
  assert.deepEqual(assembleImage(built, { created: epoch }).config.json.history?.map((h) => h.created), ['2019-05-05T00:00:00Z', epoch, epoch], 'without a base count every newer entry is clamped');
  const baseOnly = assembleImage({ ...built, history: base }, { created: epoch, baseHistory: 2 }).config.json;
  assert.equal(baseOnly.created, '2025-05-05T00:00:00Z', 'a build adding no entry: its base\'s last time, newer or not');
  // BuildKit's exporter fills an untimed entry before comparing with the base's history, so the
  // base's prefix ends there: that entry and the newer base entries after it say the epoch.
  const untimedBase = [{ created_by: 'base 0', created: '2025-01-01T00:00:00Z' }, { created_by: 'base 1' }, { created_by: 'base 2', created: '2025-05-05T00:00:00Z' }, { created_by: 'base 3', created: '2019-05-05T00:00:00Z' }];
  const afterUntimed = assembleImage({ ...built, history: [...untimedBase, built.history[2]] }, { created: epoch, baseHistory: 4 }).config.json;
  assert.deepEqual(afterUntimed.history?.map((h) => h.created), ['2025-01-01T00:00:00Z', epoch, epoch, '2019-05-05T00:00:00Z', epoch]);
});

test('manifests and indexes are written as BuildKit writes them: json.MarshalIndent, ocispec\'s field order, annotations sorted, Go\'s escapes', async () => {
  const { assembleIndex } = await import('./assembleImage.js');
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'a'.repeat(64)}`, size: 3, diffID: `sha256:${'b'.repeat(64)}` };
  const image = assembleImage({ ...pinnedToArm64, layers: [layer] }, { annotations: { z: '1', a: '<&>' } });
  const manifest = image.manifest.bytes.toString();
  assert.ok(manifest.startsWith('{\n  "schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.manifest.v1+json",\n  "config": {\n    "mediaType": "application/vnd.oci.image.config.v1+json",'), manifest);
  assert.match(manifest, /"layers": \[\n {4}\{\n {6}"mediaType": "application\/vnd\.oci\.image\.layer\.v1\.tar\+gzip",\n {6}"digest": "sha256:a{64}",\n {6}"size": 3\n {4}\}\n {2}\],\n {2}"annotations": \{\n {4}"a": "\\u003c\\u0026\\u003e",\n {4}"z": "1"\n {2}\}\n\}$/);
  const index = assembleIndex([image], { b: '2', a: '1' }).bytes.toString();
  assert.match(index, /^\{\n {2}"schemaVersion": 2,\n {2}"mediaType": "application\/vnd\.oci\.image\.index\.v1\+json",\n {2}"manifests": \[\n {4}\{\n {6}"mediaType": "application\/vnd\.oci\.image\.manifest\.v1\+json",\n {6}"digest": "sha256:[0-9a-f]{64}",\n {6}"size": \d+,\n {6}"platform": \{\n {8}"architecture": "arm64",\n {8}"os": "linux"\n {6}\}\n {4}\}\n {2}\],\n {2}"annotations": \{\n {4}"a": "1",\n {4}"b": "2"\n {2}\}\n\}$/);
});

test('layers take the manifest\'s media type family, as BuildKit converts them: a base\'s Docker types in an OCI image, OCI ones with oci-mediatypes=false', async () => {
  const { assembleIndex } = await import('./assembleImage.js');
  const layers = [
    { mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: `sha256:${'a'.repeat(64)}`, size: 3, diffID: `sha256:${'b'.repeat(64)}` },
    { mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd', digest: `sha256:${'c'.repeat(64)}`, size: 3, diffID: `sha256:${'d'.repeat(64)}` },
  ];
  const oci = assembleImage({ ...pinnedToArm64, layers });
  assert.deepEqual([oci.manifest.json.mediaType, oci.config.descriptor.mediaType, ...oci.manifest.json.layers.map((l) => l.mediaType)],
    ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.oci.image.config.v1+json', 'application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.layer.v1.tar+zstd']);
  const docker = assembleImage({ ...pinnedToArm64, layers }, { ociTypes: false });
  assert.deepEqual([docker.manifest.descriptor.mediaType, docker.config.descriptor.mediaType, ...docker.manifest.json.layers.map((l) => l.mediaType)],
    ['application/vnd.docker.distribution.manifest.v2+json', 'application/vnd.docker.container.image.v1+json', 'application/vnd.docker.image.rootfs.diff.tar.gzip', 'application/vnd.docker.image.rootfs.diff.tar.zstd']);
  assert.equal(assembleIndex([docker, docker], undefined, false).json.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
});

test('rewrite-timestamp marks every layer but the base image\'s with buildkit/rewritten-timestamp, as current BuildKit; not with Docker\'s types', () => {
  const layer = (c: string) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${c.repeat(64)}`, size: 1, diffID: `sha256:${c.repeat(64)}` });
  const built: StageResult = { ...pinnedToArm64, layers: [layer('a'), layer('b'), layer('c')], history: [{ created_by: 'base' }, { created_by: 'base env', empty_layer: true }, { created_by: 'COPY' }, { created_by: 'RUN' }] };
  const marks = (options: Parameters<typeof assembleImage>[1]) => assembleImage(built, options).manifest.json.layers.map((l) => l.annotations?.['buildkit/rewritten-timestamp']);
  assert.deepEqual(marks({ baseHistory: 2, rewrittenTimestamp: 1_700_000_000 }), [undefined, '1700000000', '1700000000']);
  assert.deepEqual(marks({ baseHistory: 2 }), [undefined, undefined, undefined]);
  assert.deepEqual(marks({ baseHistory: 2, rewrittenTimestamp: 1_700_000_000, ociTypes: false }), [undefined, undefined, undefined]);
});
