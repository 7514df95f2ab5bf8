// The worker's Kubernetes/compose health probe (infra/deploy/probes/worker-alive.mjs) against a
// real Redis: healthy with a current heartbeat, unhealthy without, and a Redis outage fails
// readiness but not liveness.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { startRedis, freePort, type RedisService } from '@buildyard/testkit';
import { WorkerRegistry } from '@buildyard/scheduler';

const probe = resolve(import.meta.dirname, '../../infra/deploy/probes/worker-alive.mjs');
let redis: RedisService;

before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

function runProbe(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', probe, ...args], {
    // Only a hang guard: starting node from TS sources took over 20 s on a loaded machine.
    encoding: 'utf8', timeout: 180_000,
    // A refused connection fails at once; the timeout only bounds a slow answer on a loaded machine.
    env: { PATH: process.env.PATH, BUILDYARD_PROBE_TIMEOUT_MS: '10000', ...env },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}${r.signal ? `(killed by ${r.signal})` : ''}` };
}

test('a worker with a current heartbeat is alive and ready; without one it is neither', async () => {
  // The heartbeat must outlive the probe runs below (each starts node from TS sources, slow on a
  // loaded machine); the test removes the worker itself rather than waiting for expiry.
  const registry = new WorkerRegistry(redis.url, { heartbeatTtlMs: 600_000 });
  try {
    const env = { BUILDYARD_REDIS_URL: redis.url, BUILDYARD_WORKER_ID: 'probe-w1' };
    const missing = runProbe(env);
    assert.equal(missing.code, 1, missing.out);
    assert.match(missing.out, /worker probe-w1 has no current heartbeat/);
    await registry.register({ id: 'probe-w1', nativePlatforms: ['linux/amd64'], emulatedPlatforms: [], capacity: 2, cacheBytes: 0, version: 'test' });
    const alive = runProbe(env);
    assert.equal(alive.code, 0, alive.out);
    assert.match(alive.out, /worker probe-w1 alive: 0 running, taking work/);
    assert.equal(runProbe(env, '--ready').code, 0);
    await registry.remove('probe-w1');
    assert.equal(runProbe(env, '--ready').code, 1);
  } finally {
    await registry.close();
  }
});

test('an unreachable Redis fails readiness only, and a missing worker id is a config error', async () => {
  const env = { BUILDYARD_REDIS_URL: `redis://127.0.0.1:${await freePort()}`, BUILDYARD_WORKER_ID: 'probe-w2' };
  const live = runProbe(env);
  assert.equal(live.code, 0, live.out);
  assert.match(live.out, /unreachable .*not judging the worker/);
  const ready = runProbe(env, '--ready');
  assert.equal(ready.code, 1, ready.out);
  const noId = runProbe({ BUILDYARD_REDIS_URL: redis.url });
  assert.equal(noId.code, 2, noId.out);
  assert.match(noId.out, /set BUILDYARD_WORKER_ID/);
});
