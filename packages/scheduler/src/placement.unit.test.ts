import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePlacement, planStages, platformQueueName, workerQueueName, type WorkerStatus } from './index.js';

function worker(id: string, native: string[], emulated: string[] = [], extra: Partial<WorkerStatus> = {}): WorkerStatus {
  return {
    id, nativePlatforms: native, emulatedPlatforms: emulated, capacity: 2, cacheBytes: 0, version: '',
    running: 0, draining: false, registeredAt: 0, lastHeartbeat: 0, ...extra,
  };
}
const none = async () => 0;

test('queue names carry no ":" (BullMQ refuses them)', () => {
  assert.equal(platformQueueName('linux/arm64', 'native'), 'stages-linux-arm64-native');
  assert.equal(platformQueueName('linux/arm/v7', 'emulated'), 'stages-linux-arm-v7-emulated');
  assert.equal(workerQueueName('host:1'), 'stages-w-host-1');
});

test('native workers are preferred over emulating ones', async () => {
  const ws = [worker('emu', ['linux/amd64'], ['linux/arm64']), worker('arm', ['linux/arm64'])];
  assert.deepEqual(await choosePlacement('linux/arm64', [], ws, none), { queue: 'stages-linux-arm64-native' });
  assert.deepEqual(await choosePlacement('linux/arm64', [], [ws[0]], none), { queue: 'stages-linux-arm64-emulated' });
});

test('no live worker for a platform is a one-line error naming it', async () => {
  const ws = [worker('a', ['linux/amd64'])];
  assert.deepEqual(await choosePlacement('linux/s390x', [], ws, none), { error: 'no worker can build linux/s390x' });
});

test('draining workers are not placed on', async () => {
  const ws = [worker('a', ['linux/amd64'], [], { draining: true })];
  assert.deepEqual(await choosePlacement('linux/amd64', [], ws, none), { error: 'no worker can build linux/amd64' });
});

test('the worker holding the inputs gets the stage while it has a free slot', async () => {
  const ws = [worker('a', ['linux/amd64']), worker('b', ['linux/amd64'])];
  assert.deepEqual(await choosePlacement('linux/amd64', ['b', 'a', 'b'], ws, none), { queue: 'stages-w-b' });
  // b is full (1 running + 1 already queued on it): a holds one input and is free
  const full = async (id: string) => (id === 'b' ? 1 : 0);
  ws[1].running = 1;
  assert.deepEqual(await choosePlacement('linux/amd64', ['b', 'a', 'b'], ws, full), { queue: 'stages-w-a' });
  ws[0].running = 2;
  assert.deepEqual(await choosePlacement('linux/amd64', ['b', 'a'], ws, full), { queue: 'stages-linux-amd64-native' });
});

test('an emulating holder is not chosen when a native worker exists', async () => {
  const ws = [worker('emu', [], ['linux/arm64']), worker('arm', ['linux/arm64'])];
  assert.deepEqual(await choosePlacement('linux/arm64', ['emu'], ws, none), { queue: 'stages-linux-arm64-native' });
});

test('planStages rejects unknown dependencies, cycles and bad ids', () => {
  const base = { buildId: 'b1', tenant: 't', priority: 0 };
  assert.throws(() => planStages({ ...base, platforms: [{ platform: 'linux/amd64', stages: [{ id: 'a', dependsOn: ['zz'], cacheKey: '', payload: 1 }] }] }),
    /depends on unknown stage zz/);
  assert.throws(() => planStages({ ...base, platforms: [{ platform: 'linux/amd64', stages: [
    { id: 'a', dependsOn: ['b'], cacheKey: '', payload: 1 }, { id: 'b', dependsOn: ['a'], cacheKey: '', payload: 1 }] }] }),
  /dependency cycle/);
  assert.throws(() => planStages({ ...base, platforms: [{ platform: 'linux/amd64', stages: [{ id: 'a|b', dependsOn: [], cacheKey: '', payload: 1 }] }] }),
    /must be non-empty/);
  const ok = planStages({ ...base, platforms: [{ platform: 'linux/amd64', stages: [
    { id: 'a', dependsOn: [], cacheKey: 'k', payload: { x: 1 } }, { id: 'b', dependsOn: ['a'], cacheKey: '', payload: null }] }] });
  assert.deepEqual(ok.map((s) => [s.ref, s.deps, s.payload]), [
    ['b1|linux/amd64|a', [], '{"x":1}'],
    ['b1|linux/amd64|b', ['b1|linux/amd64|a'], 'null'],
  ]);
});
