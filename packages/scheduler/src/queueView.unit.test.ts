import { test } from 'node:test';
import assert from 'node:assert/strict';
import { platformTotals, queueView, waitingStages, type BuildEvent, type BuildState, type StageState, type WorkerStatus } from './index.js';

const stage = (stageId: string, status: StageState['status'], extra: Partial<StageState> = {}): StageState => ({
  platform: 'linux/arm64', stageId, status, cacheKey: '', dependsOn: [], attempts: 0, ...extra,
});
const build = (buildId: string, tenant: string, stages: StageState[], extra: Partial<BuildState> = {}): BuildState => ({
  buildId, tenant, priority: 0, status: 'running', createdAt: 1000, stages, ...extra,
});
const worker = (id: string, running: number, capacity = 1, platforms = ['linux/arm64']): WorkerStatus => ({
  id, nativePlatforms: platforms, emulatedPlatforms: [], capacity, cacheBytes: 0, version: '', running, draining: false, registeredAt: 0, lastHeartbeat: 0,
});
const completed = (buildId: string, stageId: string, at: number): BuildEvent => ({
  id: `${at}-0`, at, buildId, platform: 'linux/arm64', stageId, type: 'stage-completed', worker: 'w1', emulated: false, result: null,
});

test('a stage held by its tenant limit waits, with why, from when its dependencies finished', () => {
  const big = build('big', 'a', [stage('s0', 'done'), stage('s1', 'running', { dependsOn: ['s0'] })]);
  const small = build('small', 'a', [stage('s0', 'done'), stage('s1', 'ready', { dependsOn: ['s0'] })], { createdAt: 2000 });
  const input = {
    running: [{ state: big, events: [] }, { state: small, events: [completed('small', 's0', 5000)] }],
    workers: [worker('w1', 1, 2)], tenantLimit: 1, now: 9000,
  };
  const waiting = waitingStages(input);
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0].reason, 'tenant-limit');
  assert.equal(waiting[0].sinceMs, 5000);
  assert.match(waiting[0].why, /tenant limit: tenant a runs 1 stages \(a limit of 1\)/);
  const [row] = queueView(input);
  assert.deepEqual({ waiting: row.waiting, running: row.running, oldest: row.oldestWaitMs, held: row.held }, { waiting: 1, running: 1, oldest: 4000, held: { 'tenant-limit': 1 } });
});

test('queued stages say whether no worker runs the platform or every slot is busy', () => {
  const b = build('b', 't', [stage('s0', 'queued', { queue: 'stages-linux-arm64-native' }), stage('s1', 'queued', { queue: 'stages-w-w1' }), stage('s2', 'pending', { dependsOn: ['s0'] })]);
  const busy = waitingStages({ running: [{ state: b, events: [] }], workers: [worker('w1', 1)], now: 2000 });
  assert.deepEqual(busy.map((w) => w.reason), ['workers-busy', 'worker-busy'], 'a pending stage waits for its inputs, not for a resource');
  const none = waitingStages({ running: [{ state: b, events: [] }], workers: [], now: 2000 });
  assert.deepEqual(none.map((w) => [w.reason, w.why]), [['no-worker', 'no live worker runs linux/arm64 (native)'], ['no-worker', 'placed on worker w1, which is gone (the scheduler re-homes it)']]);
});

test('a queued stage that executes on another platform than its build\'s is held by that platform\'s workers', () => {
  // An arm64 build's $BUILDPLATFORM stage, queued for amd64: an arm64 worker's free slot does not run it.
  const b = build('b', 't', [stage('tool', 'queued', { runPlatform: 'linux/amd64', queue: 'stages-linux-amd64-native' })]);
  const arm = waitingStages({ running: [{ state: b, events: [] }], workers: [worker('w1', 0)], now: 2000 });
  assert.deepEqual(arm.map((w) => [w.platform, w.reason, w.why]), [['linux/arm64', 'no-worker', 'no live worker runs linux/amd64 (native)']]);
  const amd = waitingStages({ running: [{ state: b, events: [] }], workers: [worker('w2', 1, 1, ['linux/amd64'])], now: 2000 });
  assert.deepEqual(amd.map((w) => [w.reason, w.why]), [['workers-busy', 'all 1 worker slots for linux/amd64 (native) are busy']]);
});

test('failed builds and failed stages are counted apart, per platform and tenant', () => {
  const failed = build('f', 't', [stage('s0', 'failed'), stage('s1', 'cancelled'), stage('x', 'done', { platform: 'linux/amd64' })], { status: 'failed' });
  const failedEarly = build('g', 't', [stage('s0', 'cancelled'), stage('x', 'cancelled', { platform: 'linux/amd64' })], { status: 'failed' });
  const rows = queueView({ running: [], finished: [failed, failedEarly], workers: [], now: 0 });
  const byPlatform = Object.fromEntries(rows.map((r) => [r.platform, [r.failedBuilds, r.failedStages]]));
  assert.deepEqual(byPlatform, { 'linux/amd64': [1, 0], 'linux/arm64': [2, 1] });
  assert.deepEqual(platformTotals(rows).map((t) => t.waiting), [0, 0]);
});
