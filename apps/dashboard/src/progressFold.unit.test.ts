import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeEvent, type ProgressEvent, type VertexRef } from '@buildyard/progress';
import type { BuildState, WorkerStatus } from '@buildyard/scheduler';
import { foldProgress, LOG_ENTRY_PREFIX, vertexStateEvent } from './api/progressFold.js';
import { stageViews } from './api/DashboardState.js';

const vertex: VertexRef = { digest: 'sha256:aa', name: '[build 1/2] RUN make', platform: 'linux/arm64', stage: 'build', step: 1, steps: 2, workerId: 'w1', emulated: true };

test('a log entry is told by its prefix and never parsed; anything laid out otherwise is decoded', () => {
  assert.equal(vertexStateEvent(`${LOG_ENTRY_PREFIX},"data":not even json`), undefined);
  const reordered = JSON.stringify({ timestampMs: 1, type: 'vertex.log', digest: 'sha256:aa', stream: 1, data: Buffer.from('hi').toString('base64'), truncated: false });
  assert.equal(vertexStateEvent(reordered), undefined, 'a log in another layout is still a log');
  const started: ProgressEvent = { type: 'vertex.started', vertex, startedMs: 5, timestampMs: 5 };
  assert.deepEqual(vertexStateEvent(encodeEvent(started)), started);
  assert.equal(vertexStateEvent(encodeEvent({ type: 'build.warning', message: 'w', timestampMs: 6 })), undefined);
});

test('stage views from a kept fold equal those from the events, weigh the live workers anew, and leave the fold as it was', () => {
  const state = {
    buildId: 'b', tenant: 't', status: 'running', priority: 0, createdAt: 0,
    stages: [{ platform: 'linux/arm64', stageId: 'build', status: 'running', dependsOn: [], attempts: 1 }],
  } as unknown as BuildState;
  const events: ProgressEvent[] = [
    { type: 'vertex.started', vertex, startedMs: 10, timestampMs: 10 },
    { type: 'vertex.log', digest: vertex.digest, stream: 1, data: Buffer.from('x'), truncated: false, timestampMs: 11 },
    { type: 'vertex.finished', vertex, startedMs: 10, completedMs: 30, durationMs: 20, timestampMs: 30 },
  ];
  const fold = foldProgress(events);
  const armWorker = [{ id: 'w1', nativePlatforms: ['linux/arm64'] }] as WorkerStatus[];
  assert.deepEqual(stageViews(state, [], fold, { workers: armWorker }), stageViews(state, [], events, { workers: armWorker }));
  assert.equal(stageViews(state, [], fold, { workers: armWorker })[0].stages[0].vertices[0].emulated, false, 'w1 runs arm64 natively');
  assert.equal(stageViews(state, [], fold)[0].stages[0].vertices[0].emulated, true, 'w1 gone: its own word');
  assert.deepEqual([...fold.get('linux/arm64\nbuild')!.values()].map((v) => [v.status, v.durationMs, v.emulated]), [['done', 20, true]]);
});
