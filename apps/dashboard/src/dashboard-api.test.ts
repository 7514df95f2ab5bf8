// API tests against real Redis, with state written by the real scheduler, progress and cache packages.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { seedState, startDashboard, TEST_TOKENS, until, type RunningDashboard, type SeededState } from './dashboard.test-util.js';
import { MAX_LIVE_TAILS, type DashboardServerOptions } from './api/createDashboardServer.js';
import { Scheduler, type StageSpec } from '@buildyard/scheduler';
import { DEFAULT_KEYS, redisKeys } from '@buildyard/contracts';
import { decodeEvent, ProgressWriter, type VertexRef } from '@buildyard/progress';
import { createLogger } from '@buildyard/telemetry';
import type { BuildDetail, BuildList, BuildSummary, CacheView, PlatformTenantRow, QueueView, WorkerPruneResult, WorkerView } from './api/types.js';
import { serveWorkerDisk, type WorkerDiskRequest } from '@buildyard/cache';
import { LOG_ENTRY_PREFIX } from './api/progressFold.js';
import { writeBuildRecord } from './dashboard.test-util.js';

interface Setup { redis: RedisService; seed: SeededState; dash: RunningDashboard; close(): Promise<void> }

/** Redis with the seeded state and a dashboard over it. */
async function setup(opts: Partial<DashboardServerOptions> = {}): Promise<Setup> {
  const redis = await startRedis();
  const seed = await seedState(redis.url);
  const dash = await startDashboard({ redisUrl: redis.url, prefix: seed.prefix, uiDir: '/nonexistent', ...opts });
  return { redis, seed, dash, close: async () => { await dash.close(); await seed.close(); await redis.stop(); } };
}

// The tests that only read share one setup; the one that drains, cancels and prunes has its own.
let shared: Setup;
let seed: SeededState;
let dash: RunningDashboard;
let setUpAt: number;

before(async () => {
  setUpAt = Date.now();
  shared = await setup();
  ({ seed, dash } = shared);
});
after(async () => {
  await shared?.close();
});

const json = async <T>(res: Response): Promise<T> => {
  const text = await res.text();
  assert.ok(res.ok, `HTTP ${res.status}: ${text}`);
  return JSON.parse(text) as T;
};

/** Each call of `method` on `key` through a client, with what Redis answered (the client still does the work). */
function callsOn(client: object, method: 'xrange' | 'zrangebyscore', key: string): Array<{ args: unknown[]; answer: unknown[] }> {
  const c = client as Record<typeof method, (...args: unknown[]) => Promise<unknown[]>>;
  const real = c[method].bind(c);
  const calls: Array<{ args: unknown[]; answer: unknown[] }> = [];
  c[method] = async (...args) => {
    const answer = await real(...args);
    if (args[0] === key) calls.push({ args, answer });
    return answer;
  };
  return calls;
}

test('healthz needs no token; everything else answers 401 without one', async () => {
  assert.equal((await dash.api('/healthz', { as: 'none' })).status, 200);
  for (const path of ['/api/queues', '/api/workers', '/api/builds', `/api/builds/${seed.doneBuild}`, '/api/cache', '/metrics']) {
    const res = await dash.api(path, { as: 'none' });
    assert.equal(res.status, 401, path);
    assert.match(((await res.json()) as { error: string }).error, /token/);
  }
  const bad = await fetch(`${dash.url}/api/queues`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(bad.status, 401);
  assert.equal((await dash.api('/', { as: 'none' })).status, 401);
});

test('?token= sets an HttpOnly session cookie that authorises later requests', async () => {
  const first = await fetch(`${dash.url}/api/me?token=${TEST_TOKENS.readToken}`);
  assert.deepEqual(await first.json(), { role: 'read' });
  const cookie = first.headers.get('set-cookie') ?? '';
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  assert.ok(!cookie.includes(TEST_TOKENS.readToken), 'the token itself is not stored in the cookie');
  const again = await fetch(`${dash.url}/api/me`, { headers: { cookie: cookie.split(';')[0] } });
  assert.deepEqual(await again.json(), { role: 'read' });
  const forged = await fetch(`${dash.url}/api/me`, { headers: { cookie: 'buildyard_dashboard=admin' } });
  assert.equal(forged.status, 401);
  const page = await fetch(`${dash.url}/builds?token=${TEST_TOKENS.adminToken}`, { redirect: 'manual' });
  assert.equal(page.status, 303);
  assert.equal(page.headers.get('location'), '/builds');
  assert.equal((await fetch(`${dash.url}/api/me?token=wrong`)).status, 401);
});

test('queues show the waiting arm64 stage and the amd64 throughput', async () => {
  await dash.sampler.sample();
  const { queues } = await json<{ queues: QueueView[] }>(await dash.api('/api/queues'));
  const arm = queues.find((q) => q.name === 'stages-linux-arm64-native');
  assert.ok(arm, `queues: ${queues.map((q) => q.name).join(', ')}`);
  assert.equal(arm.platform, 'linux/arm64');
  assert.equal(arm.kind, 'native');
  assert.equal(arm.waiting, 1);
  assert.ok(arm.oldestWaitMs !== null && arm.oldestWaitMs >= 0);
  assert.ok(arm.history.length >= 1 && arm.history.at(-1)!.waiting === 1);
  const amdFinished = queues.filter((q) => q.platform === 'linux/amd64' || q.kind === 'worker').reduce((s, q) => s + q.throughputPerMin, 0);
  assert.equal(amdFinished, 2, 'both amd64 stages finished within the last minute');
  assert.ok(queues.some((q) => q.name === 'stages-linux-arm64-emulated'), 'queues of platforms workers emulate are listed too');
  const { platforms } = await json<{ platforms: PlatformTenantRow[] }>(await dash.api('/api/queues'));
  const globex = platforms.find((r) => r.platform === 'linux/arm64' && r.tenant === 'globex');
  assert.ok(globex, JSON.stringify(platforms));
  assert.deepEqual([globex.waiting, globex.held, globex.running, globex.failedBuilds, globex.failedStages], [1, { queued: 1 }, 0, 0, 0]);
  assert.deepEqual(globex.why, ['queued for linux/arm64 (native): 1 of 1 worker slots free'], 'w-arm serves it; it never takes a job');
  assert.ok(globex.oldestWaitMs !== null && globex.oldestWaitMs >= 0);
});

test('a stage held back by its tenant limit counts as waiting, with why, per platform and tenant, and in /metrics', async (t) => {
  const own = await setup();
  t.after(() => own.close());
  const redis = own.seed.redis;
  // A scheduler with the deployment's limit of one stage per tenant; w-arm never takes its job,
  // so the first build keeps the tenant's one slot and the second build's stage is held.
  const scheduler = new Scheduler(redis, { prefix: own.seed.prefix, tickMs: 0, tenantLimit: 1 });
  t.after(() => scheduler.close());
  await scheduler.setTenantLimit('initech', 1);
  const stage = (id: string): StageSpec => ({ id, dependsOn: [], cacheKey: '', payload: {} });
  for (const id of ['big', 'small']) {
    await writeBuildRecord(redis, { buildId: `${id}-${own.seed.prefix}`, tenant: 'initech', status: 'running', platforms: ['linux/arm64'], createdMs: Date.now() });
    await scheduler.submitBuild({ buildId: `${id}-${own.seed.prefix}`, tenant: 'initech', priority: 0, platforms: [{ platform: 'linux/arm64', stages: [stage(id)] }] });
  }
  const small = await scheduler.getBuild(`small-${own.seed.prefix}`);
  assert.equal(small?.stages[0].status, 'ready', 'the second build\'s stage is held by the tenant limit');
  // The dashboard reads the running builds once per sample interval: the first read may predate these two.
  let platforms: PlatformTenantRow[] = [];
  let row: PlatformTenantRow | undefined;
  await until('the two initech builds in the queue view', async () => {
    ({ platforms } = await json<{ platforms: PlatformTenantRow[] }>(await own.dash.api('/api/queues')));
    row = platforms.find((r) => r.platform === 'linux/arm64' && r.tenant === 'initech');
    return row?.waiting === 2;
  }).catch(() => assert.fail(JSON.stringify(platforms)));
  assert.ok(row);
  assert.equal(row.waiting, 2, 'the queued stage and the held one');
  assert.deepEqual(row.held, { queued: 1, 'tenant-limit': 1 });
  assert.ok(row.why.some((w) => /tenant limit: tenant initech runs 1 stages/.test(w)), row.why.join('; '));
  // The build page says the same on the stage card.
  const page = await json<BuildDetail>(await own.dash.api(`/api/builds/small-${own.seed.prefix}`));
  assert.equal(page.platforms[0].stages[0].waiting?.reason, 'tenant-limit');
  assert.match(page.platforms[0].stages[0].waiting?.why ?? '', /tenant initech runs 1 stages/);
  await own.dash.sampler.sample();
  const metrics = await (await own.dash.api('/metrics')).text();
  assert.match(metrics, /buildyard_stages_waiting\{platform="linux\/arm64",tenant="initech",reason="tenant-limit"\} 1/);
  assert.match(metrics, /buildyard_stages_oldest_wait_seconds\{platform="linux\/arm64"\} \d/);
  assert.match(metrics, /buildyard_stages_oldest_wait_seconds\{platform="linux\/amd64"\} 0/, 'a platform with workers and nothing waiting reads 0');
});

test('workers list platforms, load, cache size and heartbeats', async () => {
  const { workers } = await json<{ workers: WorkerView[] }>(await dash.api('/api/workers'));
  assert.deepEqual(workers.map((w) => w.id), ['w-amd', 'w-arm']);
  const amd = workers[0];
  assert.deepEqual(amd.nativePlatforms, ['linux/amd64']);
  assert.deepEqual(amd.emulatedPlatforms, ['linux/arm64']);
  assert.equal(amd.capacity, 2);
  assert.equal(amd.running, 0);
  assert.equal(amd.load, 0);
  // A heartbeat of this run, in ms since the epoch (not an age that a slow machine could exceed).
  assert.ok(amd.lastHeartbeat >= setUpAt && amd.lastHeartbeat <= Date.now(), `last heartbeat ${amd.lastHeartbeat}`);
  assert.equal(workers[1].cacheBytes, 123_456);
  assert.equal(workers[1].draining, false);
});

test('builds filter by status, tenant and platform, with duration and cache-hit ratio', async () => {
  const all = (await json<{ builds: BuildSummary[] }>(await dash.api('/api/builds'))).builds;
  assert.deepEqual(all.map((b) => b.buildId), [seed.queuedBuild, seed.doneBuild], 'newest first');
  const done = all[1];
  assert.equal(done.status, 'succeeded');
  assert.equal(done.cacheHitRatio, 0.5);
  assert.equal(done.durationMs, 2000);
  assert.equal(done.pushed.length, 1);
  assert.deepEqual(done.images, ['127.0.0.1:5000/acme/app'], 'the image name without its digest');
  assert.ok(done.runMs !== null && done.runMs >= 0 && done.queueMs !== null && done.queueMs >= 0, `queue ${done.queueMs} ms, run ${done.runMs} ms`);
  assert.equal(all[0].errorLine, '');
  const bySucceeded = (await json<{ builds: BuildSummary[] }>(await dash.api('/api/builds?status=succeeded'))).builds;
  assert.deepEqual(bySucceeded.map((b) => b.buildId), [seed.doneBuild]);
  const byTenant = (await json<{ builds: BuildSummary[] }>(await dash.api('/api/builds?tenant=globex'))).builds;
  assert.deepEqual(byTenant.map((b) => b.buildId), [seed.queuedBuild]);
  const byPlatform = (await json<{ builds: BuildSummary[] }>(await dash.api('/api/builds?platform=linux/amd64'))).builds;
  assert.deepEqual(byPlatform.map((b) => b.buildId), [seed.doneBuild]);
});

test('a build page has the stage DAG with workers, cache and timings, and no payloads', async () => {
  const res = await dash.api(`/api/builds/${seed.doneBuild}`);
  const text = await res.clone().text();
  const build = await json<BuildDetail>(res);
  assert.equal(build.scheduler?.status, 'done');
  assert.equal(build.platforms.length, 1);
  const [{ platform, stages }] = build.platforms;
  assert.equal(platform, 'linux/amd64');
  assert.deepEqual(stages.map((s) => [s.stageId, s.status, s.worker, s.emulated, s.dependsOn]), [
    ['base', 'done', 'w-amd', false, []],
    ['app', 'done', 'w-amd', false, ['base']],
  ]);
  assert.deepEqual(stages.map((s) => s.name), ['base', 'app'], 'named by the Dockerfile stage in their steps');
  assert.equal(stages[0].cached, true, 'every vertex of base was a cache hit');
  assert.equal(stages[1].cached, false);
  assert.equal(stages[1].vertices[0].durationMs, 40);
  for (const s of stages) assert.ok(s.durationMs !== null && s.durationMs >= 0 && s.startedAt! >= s.queuedAt!, JSON.stringify(s));
  assert.ok(!text.includes('payload') && !text.includes('"layers"'), 'stage payloads and results never leave the server');
  assert.equal((await dash.api('/api/builds/no-such-build')).status, 404);
});

test('the progress SSE replays the log and follows new events live', async () => {
  const abort = new AbortController();
  const res = await dash.api(`/api/builds/${seed.queuedBuild}/progress`, { signal: abort.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  let got = '';
  const readUntil = async (needle: string) => {
    await until(`"${needle}" on the SSE stream`, async () => {
      const { value } = await reader.read();
      got += new TextDecoder().decode(value);
      return got.includes(needle);
    });
  };
  try {
    await readUntil('first line of output');
    seed.liveProgress.log(seed.armVertex.digest, 'second line, written later\n');
    await seed.liveProgress.flush();
    await readUntil('second line, written later');
    assert.match(got, /"type":"vertex.started"/);
  } finally {
    abort.abort();
  }
});

test('cache shows size per tenant, largest entries and the hit-ratio series', async () => {
  const cache = await json<CacheView>(await dash.api('/api/cache'));
  assert.deepEqual(cache.tenants.map((t) => t.tenant), ['acme', 'globex']);
  const acme = cache.tenants[0];
  assert.equal(acme.entries, 3);
  assert.equal(acme.bytes, 9_051_000);
  assert.deepEqual(acme.largest.map((e) => e.key), ['k-big', 'k-mid', 'k-small']);
  assert.deepEqual(acme.byPlatform, { 'linux/amd64': { entries: 3, bytes: 9_051_000 } });
  assert.equal(cache.hitRatio.length, 1);
  assert.equal(cache.hitRatio[0].ratio, 0.5);
});

test('the read token cannot drain, cancel or prune; the admin token can', async (t) => {
  const own = await setup();
  t.after(() => own.close());
  const { seed, dash } = own;
  const ops: Array<[string, unknown]> = [['/api/workers/w-arm/drain', undefined], [`/api/builds/${seed.queuedBuild}/cancel`, undefined], ['/api/cache/acme/prune', { all: true }]];
  for (const [path, body] of ops) {
    const init = { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body) };
    assert.equal((await dash.api(path, { ...init, as: 'read' })).status, 403, path);
    assert.equal((await dash.api(path, { ...init, as: 'none' })).status, 401, path);
  }
  assert.equal((await seed.scheduler.getBuild(seed.queuedBuild))?.status, 'running', 'the read token cancelled nothing');
  assert.equal((await json<CacheView>(await dash.api('/api/cache'))).tenants[0].entries, 3, 'the read token pruned nothing');

  await json(await dash.api('/api/workers/w-arm/drain', { method: 'POST', as: 'admin' }));
  const { workers } = await json<{ workers: WorkerView[] }>(await dash.api('/api/workers'));
  assert.equal(workers.find((w) => w.id === 'w-arm')?.draining, true);
  assert.equal((await dash.api('/api/workers/ghost/drain', { method: 'POST', as: 'admin' })).status, 404);

  await json(await dash.api(`/api/builds/${seed.queuedBuild}/cancel`, { method: 'POST', as: 'admin' }));
  assert.equal((await seed.scheduler.getBuild(seed.queuedBuild))?.status, 'cancelled');
  assert.equal((await dash.api(`/api/builds/${seed.queuedBuild}/cancel`, { method: 'POST', as: 'admin' })).status, 409);

  assert.equal((await dash.api('/api/cache/acme/prune', { method: 'POST', as: 'admin', body: '{}' })).status, 400);
  const pruned = await json<{ removed: number; bytes: number }>(await dash.api('/api/cache/acme/prune', { method: 'POST', as: 'admin', body: JSON.stringify({ keepBytes: 100_000 }) }));
  const after = await json<CacheView>(await dash.api('/api/cache'));
  assert.ok(pruned.removed >= 1 && pruned.removed <= 2, 'least recently used entries go until the rest fits');
  assert.equal(after.tenants[0].bytes, 9_051_000 - pruned.bytes);
  assert.ok(after.tenants[0].bytes <= 100_000);
  assert.ok(!after.tenants[0].largest.some((e) => e.key === 'k-big'));
  assert.equal((await dash.api('/api/cache/nobody/prune', { method: 'POST', as: 'admin', body: JSON.stringify({ all: true }) })).status, 404);
});

test('the operator\'s prune of the workers (admin only) asks every worker to prune everything, every tenant\'s, and reports what each reclaimed', async (t) => {
  const own = await setup();
  // Stand-ins for the seeded workers, answering on the channel the frontend's du and prune use.
  const client = new Redis(own.redis.url);
  const asked: WorkerDiskRequest[] = [];
  const workers = await Promise.all(['w-amd', 'w-arm'].map((id, i) => serveWorkerDisk(client, DEFAULT_KEYS.prefix, async (request) => {
    if (request.op === 'prune') asked.push(request);
    return { workerId: id, parts: [], reclaimedBytes: request.op === 'prune' ? 1000 * (i + 1) : 0 };
  })));
  t.after(async () => { for (const w of workers) w.close(); client.disconnect(); await own.close(); });
  const prune = (body: unknown, as: 'read' | 'admin' | 'none') => own.dash.api('/api/workers/prune', { method: 'POST', as, body: JSON.stringify(body) });
  assert.equal((await prune({ all: true }, 'read')).status, 403);
  assert.equal((await prune({ all: true }, 'none')).status, 401);
  for (const body of [{}, { keepBytes: -1 }, { keepBytes: '1' }]) assert.equal((await prune(body, 'admin')).status, 400, JSON.stringify(body));
  assert.equal(asked.length, 0, 'no worker was asked');

  const pruned = await json<WorkerPruneResult>(await prune({ all: true }, 'admin'));
  assert.deepEqual(pruned.workers.sort((a, b) => a.id.localeCompare(b.id)), [{ id: 'w-amd', reclaimedBytes: 1000 }, { id: 'w-arm', reclaimedBytes: 2000 }]);
  assert.equal(pruned.reclaimedBytes, 3000);
  assert.deepEqual(asked.map(({ op, keepBytes, tenant }) => ({ op, keepBytes, tenant })), [{ op: 'prune', keepBytes: 0, tenant: undefined }, { op: 'prune', keepBytes: 0, tenant: undefined }], 'no tenant: every tenant\'s state');
  asked.length = 0;
  await json<WorkerPruneResult>(await prune({ keepBytes: 5_000_000 }, 'admin'));
  assert.deepEqual(asked.map((r) => r.keepBytes), [5_000_000, 5_000_000]);
});

test('/metrics exposes the queue-depth gauge to a read token', async () => {
  await dash.sampler.sample();
  const res = await dash.api('/metrics');
  assert.equal(res.status, 200);
  assert.match(await res.text(), /buildyard_queue_depth\{platform="linux\/arm64",class="native",state="waiting"\} \d/);
});

test('the attacker with a page on another origin of the same site: an admin cookie changes nothing from there; no redirect leaves the dashboard; every answer forbids framing and foreign scripts', async () => {
  const login = await fetch(`${dash.url}/api/me?token=${TEST_TOKENS.adminToken}`);
  const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
  const drain = (headers: Record<string, string>) => fetch(`${dash.url}/api/workers/ghost/drain`, { method: 'POST', headers: { cookie, 'content-type': 'text/plain', ...headers } });
  const foreign: Array<Record<string, string>> = [{ origin: 'http://127.0.0.1:1' }, { 'sec-fetch-site': 'same-site' }, { 'sec-fetch-site': 'cross-site', origin: dash.url }, { origin: 'null' }];
  for (const headers of foreign) {
    const res = await drain(headers);
    assert.equal(res.status, 403, JSON.stringify(headers));
    assert.match(((await res.json()) as { error: string }).error, /^dashboard: a request from another origin cannot change anything/);
  }
  // The dashboard's own page (its origin, or a browser's same-origin fetch) reaches the handler: 404 for a worker it does not know.
  assert.equal((await drain({ origin: dash.url })).status, 404);
  assert.equal((await drain({ 'sec-fetch-site': 'same-origin' })).status, 404);

  const page = await fetch(`${dash.url}//evil.example/x?token=${TEST_TOKENS.readToken}`, { redirect: 'manual' });
  assert.equal(page.status, 303);
  assert.equal(page.headers.get('location'), '/evil.example/x');
  assert.equal((await fetch(`${dash.url}/api/me?token=a&token=b`)).status, 401, 'a repeated token is refused, not a 500');

  const me = await dash.api('/api/me');
  assert.match(me.headers.get('content-security-policy') ?? '', /default-src 'self'.*frame-ancestors 'none'/);
  assert.equal(me.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(me.headers.get('x-frame-options'), 'DENY');
});

test('the attacker with a read token: live log tails are capped, and one of a build nobody knows is refused, not held open', async () => {
  assert.equal((await dash.api('/api/builds/no-such-build/progress')).status, 404);
  const abort = new AbortController();
  try {
    const open = await Promise.all(Array.from({ length: MAX_LIVE_TAILS }, () => dash.api(`/api/builds/${seed.queuedBuild}/progress`, { signal: abort.signal })));
    assert.ok(open.every((res) => res.status === 200));
    const refused = await dash.api(`/api/builds/${seed.queuedBuild}/progress`);
    assert.equal(refused.status, 503);
    assert.match(((await refused.json()) as { error: string }).error, new RegExp(`^dashboard: ${MAX_LIVE_TAILS} live logs are open already`));
  } finally {
    abort.abort();
  }
  // The tails end with their readers: a new one is served.
  await until('the closed tails to be let go', async () => {
    const again = new AbortController();
    const res = await dash.api(`/api/builds/${seed.queuedBuild}/progress`, { signal: again.signal });
    again.abort();
    return res.status === 200;
  });
});

test('the attacker with a noisy build: its page reads the progress stream a page at a time, never parses a log, and each poll reads only what was added since the last', async (t) => {
  const { seed, dash: own, close } = await setup({ limits: { progressPage: 20, progressPerRequest: 50 } });
  const buildId = `b-noisy-${seed.prefix}`;
  // Queued for w-arm, which never takes it.
  await seed.scheduler.submitBuild({ buildId, tenant: 'acme', priority: 0, platforms: [{ platform: 'linux/arm64', stages: [{ id: 'noisy', dependsOn: [], cacheKey: '', payload: {} }] }] });
  const progress = new ProgressWriter(seed.redis, buildId, { maxLogBytesPerVertex: 64 << 20 });
  t.after(async () => { await progress.close(); await close(); });
  const vertex = (n: number): VertexRef => ({
    digest: `sha256:${String(n).repeat(64)}`, name: `[noisy ${n}/3] RUN make`, platform: 'linux/arm64', stage: 'noisy', step: n, steps: 3, workerId: 'w-gone', emulated: true,
  });
  await progress.started(vertex(1), 1000);
  for (let i = 0; i < 120; i++) progress.log(vertex(1).digest, 'x'.repeat(16 * 1024)); // one 16 KiB entry each
  await progress.finished(vertex(1), 1000, 1500);
  await progress.cached(vertex(2));
  const key = DEFAULT_KEYS.progress(buildId);
  const stream = (await seed.redis.xrange(key, '-', '+')).map(([, fields]) => fields[1]);
  assert.equal(stream.length, 123);
  // What the dashboard skips logs by: the writer's layout of a log entry.
  assert.ok(stream.filter((raw) => decodeEvent(raw).type === 'vertex.log').every((raw) => raw.startsWith(LOG_ENTRY_PREFIX)));

  const reads = callsOn(own.state.redis, 'xrange', key);
  const page = async () => json<BuildDetail>(await own.api(`/api/builds/${buildId}`));
  const behind = (d: BuildDetail) => d.warnings.some((w) => /progress stream is long/.test(w));
  const polls: number[] = [];
  let detail: BuildDetail;
  do {
    detail = await page();
    const got = reads.splice(0);
    assert.ok(got.every((r) => r.args[3] === 'COUNT' && Number(r.args[4]) <= 20), `XRANGEs of a page at most: ${JSON.stringify(got.map((r) => r.args))}`);
    polls.push(got.reduce((n, r) => n + r.answer.length, 0));
  } while (behind(detail) && polls.length < 10);
  assert.deepEqual(polls, [50, 50, 23], 'at most progressPerRequest entries a poll, each entry read once');
  const vertices = () => detail.platforms[0].stages[0].vertices.map((v) => [v.name, v.status, v.durationMs, v.emulated]);
  assert.deepEqual(vertices(), [['[noisy 1/3] RUN make', 'done', 500, true], ['[noisy 2/3] RUN make', 'cached', 0, null]]);

  const [[lastRead]] = await seed.redis.xrevrange(key, '+', '-', 'COUNT', 1);
  await progress.started(vertex(3), 2000);
  progress.log(vertex(3).digest, 'more output\n');
  await progress.flush();
  detail = await page();
  assert.deepEqual(reads.map((r) => r.answer.length), [2], 'the next poll reads the two new entries only');
  assert.equal(reads[0].args[1], `(${lastRead}`, 'from just after the last entry read');
  assert.deepEqual(vertices().at(-1), ['[noisy 3/3] RUN make', 'running', null, true]);
  assert.ok(!behind(detail));
});

test('the attacker with a read token: a build filter that matches nothing examines a bounded number of records and says so', async (t) => {
  const keys = redisKeys(`scan${seed.prefix}`);
  const own = await startDashboard({ redisUrl: shared.redis.url, keys, prefix: seed.prefix, uiDir: '/nonexistent', limits: { buildsScanned: 50 } });
  t.after(() => own.close());
  // 60 builds; the only one of tenant "needle" is the oldest, past the 50 newest one request examines.
  const now = Date.now();
  for (let i = 0; i < 60; i++) {
    await writeBuildRecord(seed.redis, { buildId: `scan-${i}`, tenant: i === 0 ? 'needle' : 'acme', status: 'succeeded', platforms: ['linux/amd64'], createdMs: now - 60_000 + i }, keys);
  }
  const list = async (query: string) => json<BuildList>(await own.api(`/api/builds?${query}`));
  assert.deepEqual(await list('tenant=nobody'), { builds: [], scanLimitReached: true });
  assert.deepEqual(await list('tenant=needle'), { builds: [], scanLimitReached: true }, 'the oldest build is past the bound');
  const acme = await list('tenant=acme&limit=10');
  assert.deepEqual([acme.builds.length, acme.builds[0].buildId, acme.scanLimitReached], [10, 'scan-59', false]);
  const unfiltered = await list('limit=50');
  assert.deepEqual([unfiltered.builds.length, unfiltered.scanLimitReached], [50, false], 'a request that found its page is not cut short');
});

test('the attacker with a read token: polling the queue view and a running build\'s page reads the build history once per sample interval, not per request', async (t) => {
  const own = await startDashboard({ redisUrl: shared.redis.url, prefix: seed.prefix, uiDir: '/nonexistent', sampleIntervalMs: 3_600_000 });
  t.after(() => own.close());
  const reads = callsOn(own.state.redis, 'zrangebyscore', DEFAULT_KEYS.builds);
  for (let i = 0; i < 5; i++) {
    const { platforms } = await json<{ platforms: PlatformTenantRow[] }>(await own.api('/api/queues'));
    assert.ok(platforms.some((r) => r.platform === 'linux/arm64' && r.tenant === 'globex' && r.waiting === 1), JSON.stringify(platforms));
    const page = await json<BuildDetail>(await own.api(`/api/builds/${seed.queuedBuild}`));
    assert.equal(page.platforms[0].stages[0].waiting?.reason, 'queued');
  }
  assert.ok(reads.length <= 1, `${reads.length} reads of the build list`);
});

test('the attacker tenant with a huge cache: /api/cache counts all its entries but examines at most cacheEntriesPerTenant of them', async (t) => {
  const own = await startDashboard({ redisUrl: shared.redis.url, prefix: seed.prefix, uiDir: '/nonexistent', limits: { cacheEntriesPerTenant: 2 } });
  t.after(() => own.close());
  const cache = await json<CacheView>(await own.api('/api/cache'));
  const [acme, globex] = cache.tenants;
  assert.deepEqual([acme.tenant, acme.entries, acme.examined, acme.largest.length], ['acme', 3, 2, 2]);
  assert.equal(acme.bytes, acme.largest.reduce((n, e) => n + e.size, 0), 'sizes are of the examined entries');
  assert.deepEqual([globex.entries, globex.examined], [1, 1]);
});

test('the attacker without a token: /healthz says Redis is unreachable without Redis\'s own words, which go to the log', async (t) => {
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const lines: string[] = [];
  const log = createLogger('buildyard-dashboard', { destination: { write: (line: string) => { lines.push(line); } } });
  const own = await startDashboard({ redisUrl: redis.url, uiDir: '/nonexistent', log });
  t.after(async () => {
    await admin.acl('SETUSER', 'default', '+ping');
    await admin.quit();
    await own.close();
    await redis.stop();
  });
  assert.equal((await own.api('/healthz', { as: 'none' })).status, 200);
  // Redis refusing the ping with words of its own (a real Redis error, as an outage's would be).
  await admin.acl('SETUSER', 'default', '-ping');
  const res = await own.api('/healthz', { as: 'none' });
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { ok: false, error: 'dashboard: Redis is unreachable; the dashboard\'s log says why' });
  assert.ok(lines.some((l) => l.includes('Redis did not answer a ping') && /"err":"NOPERM/.test(l)), lines.join(''));
});

test('the attacker with the metrics token (a scraper\'s): it reads /metrics and nothing else', async () => {
  assert.equal((await dash.api('/metrics', { as: 'metrics' })).status, 200);
  const elsewhere: Array<[string, string]> = [
    ['GET', '/api/me'], ['GET', '/api/builds'], ['GET', `/api/builds/${seed.doneBuild}`], ['GET', `/api/builds/${seed.doneBuild}/progress`],
    ['GET', '/api/queues'], ['GET', '/api/cache'], ['GET', '/'], ['POST', '/api/workers/ghost/drain'],
  ];
  for (const [method, path] of elsewhere) {
    const res = await dash.api(path, { method, as: 'metrics' });
    assert.equal(res.status, 403, `${method} ${path}`);
    assert.match(((await res.json()) as { error: string }).error, /^dashboard: the metrics token \(dashboard\.metricsToken\) reads GET \/metrics only; use the read or admin token/);
  }
  // By ?token= too, and it never becomes a session.
  const query = await fetch(`${dash.url}/builds?token=${TEST_TOKENS.metricsToken}`, { redirect: 'manual' });
  assert.equal(query.status, 403);
  assert.equal(query.headers.get('set-cookie'), null);
  const scrape = await fetch(`${dash.url}/metrics?token=${TEST_TOKENS.metricsToken}`);
  assert.equal(scrape.status, 200);
  assert.equal(scrape.headers.get('set-cookie'), null);
});
