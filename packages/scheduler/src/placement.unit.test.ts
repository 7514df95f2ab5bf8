import { test } from 'node:test';
import assert from 'node:assert/strict';
import { choosePlacement, planStages, platformQueueName, workerQueueName, type HolderStatus } from './index.js';
import { isSteadyQueue } from './Dispatcher.js';

function holder(native: string[], emulated: string[] = [], extra: Partial<HolderStatus> = {}): HolderStatus {
  return { nativePlatforms: native, emulatedPlatforms: emulated, capacity: 2, running: 0, draining: false, queued: 0, ...extra };
}
const count = (native: number, emulated = 0) => ({ native, emulated });

test('queue names carry no ":" (BullMQ refuses them)', () => {
  assert.equal(platformQueueName('linux/arm64', 'native'), 'stages-linux-arm64-native');
  assert.equal(platformQueueName('linux/arm/v7', 'emulated'), 'stages-linux-arm-v7-emulated');
  assert.equal(workerQueueName('host:1'), 'stages-w-host-1');
});

test('a dispatcher keeps Queue objects for platform queues and its own consumer\'s queue only, never for other workers\' (their number grows with the fleet)', () => {
  assert.ok(isSteadyQueue(platformQueueName('linux/arm64', 'native')));
  assert.ok(isSteadyQueue(platformQueueName('linux/amd64', 'emulated'), workerQueueName('me')));
  assert.ok(isSteadyQueue(workerQueueName('me'), workerQueueName('me')));
  assert.ok(!isSteadyQueue(workerQueueName('other'), workerQueueName('me')));
  assert.ok(!isSteadyQueue(workerQueueName('other')), 'a frontend\'s dispatcher has no own queue');
});

test('native workers are preferred over emulating ones', () => {
  assert.deepEqual(choosePlacement('linux/arm64', [], count(1, 1), new Map()), { queue: 'stages-linux-arm64-native' });
  assert.deepEqual(choosePlacement('linux/arm64', [], count(0, 1), new Map()), { queue: 'stages-linux-arm64-emulated' });
});

test('no live worker for a platform is a one-line error naming it', () => {
  assert.deepEqual(choosePlacement('linux/s390x', [], count(0, 0), new Map()), { error: 'no worker can build linux/s390x' });
});

test('draining input holders are not placed on', () => {
  const hs = new Map([['a', holder(['linux/amd64'], [], { draining: true })]]);
  assert.deepEqual(choosePlacement('linux/amd64', ['a'], count(1), hs), { queue: 'stages-linux-amd64-native' });
});

test('the worker holding the inputs gets the stage while it has a free slot', () => {
  const hs = new Map([['a', holder(['linux/amd64'])], ['b', holder(['linux/amd64'])]]);
  assert.deepEqual(choosePlacement('linux/amd64', ['b', 'a', 'b'], count(2), hs), { queue: 'stages-w-b', worker: 'b' });
  // b is full (1 running + 1 already queued on it): a holds one input and is free
  hs.get('b')!.running = 1;
  hs.get('b')!.queued = 1;
  assert.deepEqual(choosePlacement('linux/amd64', ['b', 'a', 'b'], count(2), hs), { queue: 'stages-w-a', worker: 'a' });
  // a's one slot left is taken by a stage placed earlier in the same pass
  hs.get('a')!.running = 1;
  assert.deepEqual(choosePlacement('linux/amd64', ['b', 'a'], count(2), hs, new Map([['a', 1]])), { queue: 'stages-linux-amd64-native' });
});

test('a holder that is not alive (absent from the view) is not chosen', () => {
  assert.deepEqual(choosePlacement('linux/amd64', ['gone'], count(1), new Map()), { queue: 'stages-linux-amd64-native' });
});

test('an emulating holder is not chosen when a native worker exists', () => {
  const hs = new Map([['emu', holder([], ['linux/arm64'])]]);
  assert.deepEqual(choosePlacement('linux/arm64', ['emu'], count(1, 1), hs), { queue: 'stages-linux-arm64-native' });
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
