// The platform an image says: the one asked for (as BuildKit's dockerfile2llb), else its final stage's.
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
