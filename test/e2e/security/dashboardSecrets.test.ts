// Issue 9, isolation (RELIABILITY.md known gap 5): the dashboard reads the same Redis state and
// progress streams as the isolation test scans; here every page it serves is scanned for a
// build secret, after a real build used it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redisKeys } from '@buildyard/contracts';
import { solve } from '../grpcClient.js';
import { clusterFixture } from './clusterFixture.js';
import { startDashboard } from '../../../apps/dashboard/src/dashboard.test-util.js';

const fx = clusterFixture({ workers: 1 }, 'dash-secrets');
const nonce = `${process.pid}${Date.now()}`;

test('a secret a build used appears on no dashboard page: API, log stream, metrics or UI', { timeout: 180_000 }, async (t) => {
  const { cluster } = fx;
  const secret = `s3cr3t-${nonce}-${'q'.repeat(16)}`;
  const buildId = `dash-secret-${nonce}`;
  // As in isolation.test.ts: the expected value comes as two build-arg halves, so nothing but the
  // secret holds it whole. The RUN never fails: a wrong value shows as a missing marker instead.
  const dir = fx.context('secret', `FROM ${cluster.busybox.reference}\nARG H1\nARG H2\nRUN --mount=type=secret,id=token if test "$(cat /run/secrets/token)" = "$H1$H2"; then echo SECRET-OK; else echo SECRET-WRONG; fi\n`);
  const outcome = await solve(cluster, dir, {
    platforms: ['linux/amd64'], buildId, secrets: [{ id: 'token', value: Buffer.from(secret) }],
    buildArgs: { H1: secret.slice(0, 10), H2: secret.slice(10) },
  });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, /SECRET-OK/, 'the RUN step read the secret');

  // The dashboard over the cluster's Redis, with the cluster's key prefix (its default unless set).
  const dash = await startDashboard({ redisUrl: cluster.redis.url, redisCluster: cluster.redisCluster !== undefined, keys: redisKeys(cluster.env.BUILDYARD_REDIS_KEY_PREFIX) });
  t.after(() => dash.close());
  const get = async (path: string) => {
    const res = await dash.api(path, { as: 'admin' });
    const body = await res.text();
    assert.equal(res.status, 200, `${path}: ${body.slice(0, 300)}`);
    return body;
  };

  // The log stream first: it ends when the build's progress stream does (the frontend closes it
  // last, after the build record), so every other page is read in the build's final state.
  const progress = await get(`/api/builds/${buildId}/progress`);
  assert.match(progress, /event: end/, 'the stream replayed the finished build to its end');
  const logText = progress.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)) as { type: string; text?: string })
    .filter((e) => e.type === 'vertex.log').map((e) => e.text).join('');
  // Only the RUN's output holds the marker (the step's name shows `echo SECRET-OK` too, hence log events only).
  assert.match(logText, /SECRET-OK/, 'the log stream carries the RUN\'s output');

  const pages: Record<string, string> = { [`/api/builds/${buildId}/progress`]: progress };
  for (const path of ['/api/me', '/api/queues', '/api/workers', '/api/builds', `/api/builds/${buildId}`, '/api/cache', '/metrics', '/healthz', '/', `/builds/${buildId}`]) {
    pages[path] = await get(path);
  }
  assert.ok(pages['/api/builds'].includes(buildId) && pages[`/api/builds/${buildId}`].includes(buildId), 'the dashboard shows the build');
  assert.deepEqual(Object.keys(pages).filter((path) => pages[path].includes(secret)), [], 'no dashboard page holds the secret');
});
