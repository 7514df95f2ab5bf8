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
