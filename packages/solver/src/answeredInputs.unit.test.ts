// The results of stages a frontend answered from the cache travel in a scheduled stage's plan
// (withAnsweredInputs): through JSON, as the scheduler stores a payload, they come back as
// they went; a malformed one is refused naming the stage, and a plan with none is unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StagePlan } from '@buildyard/graph';
import { answeredInputsOf, withAnsweredInputs } from './StageAssembly.js';
import type { StageResult } from './StageResult.js';

const stage: StagePlan = {
  id: 'final', index: 2, platform: 'linux/arm64', base: { kind: 'stage', stageId: 'base' }, dependsOn: ['base', 'client'],
  vertices: [], config: {}, history: [], cacheKey: 'sha256:final', noCache: false,
};

const result = (stageId: string): StageResult => ({
  stageId, platform: 'linux/arm64', cacheKey: `sha256:${stageId}`, verticesTotal: 2, verticesCached: 2, config: { Env: ['A=1'] },
  layers: [{ digest: `sha256:${stageId}-layer`, diffID: `sha256:${stageId}-diff`, size: 10, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
  history: [{ created: '2026-11-30T00:00:00.000Z', created_by: `RUN make ${stageId}` }],
});

test('answered input results survive the payload\'s JSON and come back as they went', () => {
  const inputs = { base: result('base') };
  const carried = JSON.parse(JSON.stringify(withAnsweredInputs(stage, inputs))) as StagePlan;
  assert.deepEqual(answeredInputsOf(carried), inputs);
  const { answeredInputs: _, ...plan } = carried as StagePlan & { answeredInputs: unknown };
  assert.deepEqual(plan, stage, 'the plan itself is unchanged');
});

test('a plan with no answered inputs is the plan itself and carries none', () => {
  assert.equal(withAnsweredInputs(stage, {}), stage);
  assert.deepEqual(answeredInputsOf(stage), {});
});

test('a malformed answered input is refused, naming the stage', () => {
  const bad = { ...stage, answeredInputs: { base: { ...result('base'), layers: 'none' } } } as StagePlan;
  assert.throws(() => answeredInputsOf(bad), /the result of stage base \(linux\/arm64\) answered from the cache/);
  assert.throws(() => answeredInputsOf({ ...stage, answeredInputs: 'x' } as StagePlan), /stage final \(linux\/arm64\) carries malformed input results/);
});
