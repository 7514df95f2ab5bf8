// A stage's input results come from the scheduler and, for stages the frontend answered from
// the cache, from its plan: the worker must see both (it marks their layers used and solves on them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StageResult } from '@buildyard/contracts';
import type { StagePlan } from '@buildyard/graph';
import { withAnsweredInputs } from '@buildyard/solver';
import { stageInputs } from './stageInputs.js';

const stage: StagePlan = {
  id: 'final', index: 2, platform: 'linux/amd64', base: { kind: 'stage', stageId: 'base' }, dependsOn: ['base', 'server'],
  vertices: [], config: {}, history: [], cacheKey: 'sha256:final', noCache: false,
};

const result = (stageId: string): StageResult => ({
  stageId, platform: 'linux/amd64', cacheKey: `sha256:${stageId}`, verticesTotal: 1, verticesCached: 1, config: {},
  layers: [{ digest: `sha256:${stageId}-layer`, diffID: `sha256:${stageId}-diff`, size: 1, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
  history: [{ created: '2026-11-30T00:00:00.000Z', created_by: `RUN ${stageId}` }],
});

test('a stage\'s inputs are the scheduler\'s results and those its plan carries from the frontend\'s cache answers', () => {
  const plan = JSON.parse(JSON.stringify(withAnsweredInputs(stage, { base: result('base') }))) as StagePlan;
  const inputs = stageInputs({ platform: 'linux/amd64', inputs: { server: JSON.parse(JSON.stringify(result('server'))) } }, plan);
  assert.deepEqual(Object.keys(inputs).sort(), ['base', 'server']);
  assert.deepEqual(inputs.base!.layers.map((l) => l.digest), ['sha256:base-layer']);
  assert.deepEqual(stageInputs({ platform: 'linux/amd64', inputs: {} }, stage), {}, 'a plain plan has only the scheduler\'s');
  assert.throws(() => stageInputs({ platform: 'linux/amd64', inputs: { server: { layers: 'x' } } }, stage), /the result of stage server \(linux\/amd64\)/);
});
