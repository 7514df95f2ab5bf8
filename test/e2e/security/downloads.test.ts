// Issue 14, item 5 (and item 7's killed worker): a build's downloads cannot outlive it. The
// attacker points ADD at a server that accepts and never answers (or drips a byte now and
// then): the step fails with a clear timeout; a cancel mid-download closes the connection and
// frees the worker's slot and overlay mount at once; and a worker killed mid-download leaves
// mounts that its successor reclaims when it starts. The servers stand outside, in the test's
// own network namespace (outsideNetwork.ts): a build may not fetch from the worker host itself.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { until } from '@buildyard/testkit';
import { solve } from '../grpcClient.js';
import { unary } from './clusterCalls.js';
import { clusterFixture } from './clusterFixture.js';
import { startOutside, type Outside, type OutsideConnection } from './outsideNetwork.js';

const IDLE_MS = 1500;
// One slot on one worker: a build that runs after a cancelled one proves the slot came back.
const fx = clusterFixture({ workers: 1, env: { BUILDYARD_WORKER_CAPACITY: '1', BUILDYARD_FETCH_IDLE_TIMEOUT_MS: String(IDLE_MS) } }, 'downloads');
const nonce = `${process.pid}-${Date.now()}`;
let outside: Outside;
before(async () => { outside = await startOutside(); });
after(async () => { await outside?.stop(); });

/** Port 81 of the outside accepts and never answers; 82 answers 200 with a huge length, then
 *  a byte every 100 ms: no timeout ever ends it. `connections` are those opened from now on. */
function serve(port: 81 | 82): { url: string; readonly connections: OutsideConnection[] } {
  const earlier = outside.connections(port).length;
  return { url: `http://${outside.web}:${port}/payload.bin`, get connections() { return outside.connections(port).slice(earlier); } };
}

const closed = (connection: OutsideConnection) => connection.closed;

/** Mount points under a worker's state dir (overlay snapshots, pinned cache mounts). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)
    .map((line) => line.split(' ')[4].replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p.startsWith(dir + '/'));
}

const liveWorker = () => fx.cluster.workers.find((w) => w.process.child.exitCode === null && w.process.child.signalCode === null)!;

/** Starts a build whose ADD downloads from the dripping server; answers once the worker is downloading. */
async function dripDownload(name: string) {
  const server = serve(82);
  const buildId = `dl-${name}-${nonce}`;
  const worker = liveWorker();
  const build = solve(fx.cluster, fx.context(name, `FROM ${fx.cluster.busybox.reference}\nADD ${server.url} /payload\n`), { buildId, platforms: ['linux/amd64'], noCache: true });
  await until('the worker to start the download', () => server.connections.length > 0, 60_000);
  return { server, buildId, worker, build };
}

test('ADD from a server that accepts and never answers fails with a clear timeout error', { timeout: 120_000 }, async () => {
  const silent = serve(81);
  const outcome = await solve(fx.cluster, fx.context('silent', `FROM ${fx.cluster.busybox.reference}\nADD ${silent.url} /payload\n`), { platforms: ['linux/amd64'], noCache: true });
  assert.ok(outcome.error, 'the build fails');
  assert.match(outcome.error.message, new RegExp(`ADD ${silent.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: download failed \\(3 attempts\\): ${outside.web.replace(/\./g, '\\.')}:81 sent nothing for ${IDLE_MS} ms`));
  assert.ok(!outcome.error.message.includes('\n'), 'one line');
  // The worker hung up every connection it opened.
  assert.equal(silent.connections.length, 3);
  await Promise.all(silent.connections.map(closed));
});

test('a cancel during a download closes the connection and frees the slot and the overlay mount at once', { timeout: 120_000 }, async () => {
  const { server, buildId, worker, build } = await dripDownload('cancel');
  assert.ok(mountsUnder(worker.stateDir).length > 0, 'the ADD step holds an overlay mount while it downloads');
  await unary(fx.cluster, 'cancel', { buildId }, fx.cluster.token);
  // Without the cancel reaching the download this never happens: the server drips forever.
  await closed(server.connections[0]);
  const outcome = await build;
  assert.ok(outcome.error, 'the cancelled build ends with an error');
  assert.equal(server.connections.length, 1, 'no retry after the cancel');
  // The only slot is free again: the next build runs on the same worker and finishes.
  const next = await solve(fx.cluster, fx.context('after-cancel', `FROM ${fx.cluster.busybox.reference}\nRUN echo after-${nonce}\n`), { platforms: ['linux/amd64'], noCache: true });
  assert.equal(next.error, undefined, next.error?.message);
  assert.match(next.logs, new RegExp(`after-${nonce}`));
  assert.deepEqual(mountsUnder(worker.stateDir), [], 'no mount is left under the worker\'s state dir');
});

test('a worker killed mid-download leaves its mounts; the worker that starts next in its state dir reclaims them', { timeout: 180_000 }, async () => {
  const { server, buildId, worker, build } = await dripDownload('kill');
  const left = mountsUnder(worker.stateDir);
  assert.ok(left.length > 0, 'the ADD step holds an overlay mount');
  worker.process.kill('SIGKILL');
  await until('the worker to exit', () => worker.process.child.exitCode !== null || worker.process.child.signalCode !== null, 30_000);
  assert.deepEqual(mountsUnder(worker.stateDir).filter((m) => left.includes(m)), left, 'a killed process cannot unmount: its mounts are still there');
  // Nothing more for this build: its stage must not be what the new worker mounts.
  await unary(fx.cluster, 'cancel', { buildId }, fx.cluster.token);
  await build.catch(() => undefined);
  fx.cluster.workers.splice(fx.cluster.workers.indexOf(worker), 1);
  const successor = await fx.cluster.addWorker(worker.id);
  const still = mountsUnder(worker.stateDir).filter((m) => left.includes(m));
  assert.deepEqual(still, [], `the successor unmounted what the killed worker left; its log: ${successor.process.output().slice(-3000)}`);
});
