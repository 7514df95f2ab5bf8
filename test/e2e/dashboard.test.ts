// Issue 8 acceptance: the dashboard and the Prometheus metrics against a REAL cluster (Redis,
// registry seeded with busybox, buildyardd and two buildyard-worker processes), driven through
// gRPC and watched in Debian's Chromium. Screenshots go to test-artifacts/dashboard/e2e-*.png.
// Needs the dashboard UI built (`npm run build -w @buildyard/dashboard`, part of `npm test`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { readProgress } from '@buildyard/progress';
import { createMetrics } from '@buildyard/telemetry';
import { startCluster, type Cluster } from '@buildyard/testkit';
import type { BuildSummary, PlatformTenantRow, WorkerView } from '../../apps/dashboard/src/api/types.js';
import { launchBrowser, startDashboard, TEST_TOKENS, UI_DIR, until, type RunningDashboard, type TestBrowser } from '../../apps/dashboard/src/dashboard.test-util.js';
import { startGates, type Gates } from './gate.js';
import { solve, type SolveOutcome } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
const built = existsSync(join(UI_DIR, 'index.html'));
const skip = built ? false : `dashboard UI not built at ${UI_DIR}; run npm run build -w @buildyard/dashboard`;

let cluster: Cluster;
let dash: RunningDashboard;
let tb: TestBrowser;
let work: string;
// The two-platform build's last steps wait at a gate: it runs until the test has seen it running.
let gates: Gates;

before(async () => {
  if (!built) return;
  gates = await startGates();
  cluster = await startCluster({
    workers: 2,
    // A tenant of its own for the test that holds builds at a tenant limit of 1.
    tenants: ['limited'],
    // Two stages per worker: one may wait at the gate while the build's other stages go on there
    // (a stage placed on the worker that holds its inputs waits for that worker's free slot).
    // Health ports are free ones.
    env: { BUILDYARD_WORKER_CAPACITY: '2', BUILDYARD_WORKER_HEALTH_LISTEN: '127.0.0.1:0', BUILDYARD_HEALTH_LISTEN: '127.0.0.1:0' },
  });
  dash = await startDashboard({ redisUrl: cluster.redis.url, metrics: createMetrics() });
  tb = await launchBrowser();
  // Admin login once: the token becomes an HttpOnly cookie.
  await tb.page.goto(`${dash.url}/?token=${TEST_TOKENS.adminToken}`);
  work = mkdtempSync(join(tmpdir(), 'buildyard-dash-e2e-'));
}, { timeout: 90_000 });

after(async () => {
  await tb?.close();
  await dash?.close();
  // Gates first: a step still held at one fails at once instead of keeping a worker busy.
  await gates?.stop();
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Sum of the samples of `name` whose labels include every pair in `labels`. */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

/** The health address a process logged (one JSON object per line; field order not assumed). */
function healthUrl(output: string, what: string): string {
  for (const line of output.split('\n')) {
    let entry: { msg?: unknown; health?: unknown };
    try { entry = JSON.parse(line) as typeof entry; } catch { continue; }
    if (entry.msg === `${what} health listening` && typeof entry.health === 'string') return entry.health;
  }
  assert.fail(`${what} printed its health address: ${output.slice(-500)}`);
}

interface Scrape { frontend: string; workers: string[]; dashboard: string }

/** /metrics of the frontend, each worker and the dashboard. */
async function scrape(): Promise<Scrape> {
  const text = async (url: string) => (await fetch(url)).text();
  return {
    frontend: await text(`${healthUrl(cluster.frontendProcess.output(), 'buildyardd')}/metrics`),
    workers: await Promise.all(cluster.workers.map((w) => text(`${healthUrl(w.process.output(), 'buildyard-worker')}/metrics`))),
    dashboard: await (await dash.api('/metrics')).text(),
  };
}

/** How much a metric grew between two scrapes, summed over the workers for worker metrics. */
function grew(before: Scrape, after: Scrape, where: 'frontend' | 'workers' | 'dashboard', name: string, labels?: Record<string, string>): number {
  const value = (s: Scrape) => (where === 'workers' ? s.workers : [s[where]]).reduce((n, t) => n + metricValue(t, name, labels), 0);
  return value(after) - value(before);
}

interface TwoPlatformBuild {
  id: string;
  image: string;
  /** True once the build's Solve stream has ended. */
  finished(): boolean;
  /** Lets the final stages finish: until then they wait at a gate (after every "built" line). */
  release(): void;
  /** The outcome, with the metrics scraped just before the build and once the frontend counted it. */
  done: Promise<{ outcome: SolveOutcome; before: Scrape; after: Scrape }>;
}
let twoPlatform: Promise<TwoPlatformBuild> | undefined;

/**
 * A two-platform build of examples/multi-stage. The first test watches one from its start
 * (`fresh`); the metrics test uses the latest one, starting it if none ran: so each test runs
 * alone and in any order. A fresh file in the context makes every stage a cache miss, whatever
 * other tests built before. The final stage of each platform first waits at a gate, so the
 * build is still running for as long as a test watches it run.
 */
function twoPlatformBuild(opts: { fresh?: boolean } = {}): Promise<TwoPlatformBuild> {
  if (opts.fresh) twoPlatform = undefined;
  twoPlatform ??= (async () => {
    const id = `dash-e2e-${Date.now().toString(36)}`;
    const image = `${cluster.registry.host}/e2e/dashboard:1`;
    const context = join(work, id);
    cpSync(example, context, { recursive: true });
    writeFileSync(join(context, 'common', 'build-id.txt'), `${id}\n`);
    const dockerfile = readFileSync(join(context, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^USER nobody$/m, 'the final stage of examples/multi-stage switches to USER nobody');
    writeFileSync(join(context, 'Dockerfile'), dockerfile.replace(/^USER nobody$/m, `RUN ${gates.wait(id)}\nUSER nobody`));
    const before = await scrape();
    let finished = false;
    const done = solve(cluster, context, {
      buildId: id, platforms: ['linux/amd64', 'linux/arm64'], buildArgs: { BASE: cluster.busybox.reference },
      outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }],
    }).finally(() => { finished = true; }).then(async (outcome) => {
      // The frontend counts a build as it ends; scrape once it has, not at some time after.
      if (!outcome.error) await until('the frontend to count the build', async () => grew(before, await scrape(), 'frontend', 'buildyard_builds_total', { status: 'succeeded' }) >= 1, 30_000);
      return { outcome, before, after: await scrape() };
    });
    return { id, image, finished: () => finished, release: () => gates.open(id), done };
  })();
  return twoPlatform;
}

/** Resolves once `count` steps whose names match `name` have finished in the build's progress stream. */
async function buildStepsFinished(buildId: string, name: RegExp, count: number): Promise<void> {
  const redis = cluster.openRedis();
  try {
    let finished = 0;
    for await (const event of readProgress(redis, buildId, { fromStart: true })) {
      if (event.type === 'vertex.finished' && name.test(event.vertex.name) && ++finished === count) return;
      if (event.type === 'vertex.error' || event.type === 'build.error') throw new Error(`build ${buildId} failed before its steps finished: ${JSON.stringify(event).slice(0, 500)}`);
    }
    throw new Error(`build ${buildId} ended with ${finished} of ${count} steps matching ${name} finished`);
  } finally {
    redis.disconnect();
  }
}

test('a two-platform build shows in the builds and queue views while running, its log tails live, and it ends with its digests', { skip, timeout: 540_000 }, async () => {
  const { page } = tb;
  const { id, image, finished, release, done } = await twoPlatformBuild({ fresh: true });

  // Builds list: the row appears with status running before the build has finished.
  await page.goto(`${dash.url}/builds`);
  await page.locator(`tr[data-build="${id}"]`, { hasText: 'running' }).waitFor({ timeout: 30_000 });
  assert.equal(finished(), false, 'the build was still running when the builds list showed it');
  await tb.screenshot('e2e-builds');

  // Queue view: the build's stage jobs show as waiting or active in a platform queue.
  await page.goto(`${dash.url}/`);
  await page.locator('table[data-testid="queues"] tbody tr').first().waitFor({ timeout: 30_000 });
  await until('a stage job in the queue view', async () => {
    const counts = await page.locator('table[data-testid="queues"] td[data-field="waiting"], table[data-testid="queues"] td[data-field="active"]').allTextContents();
    return counts.some((c) => Number(c) > 0);
  }, 30_000);
  assert.equal(finished(), false, 'the queue view showed the build while it ran');
  await tb.screenshot('e2e-queues');

  // Build page: the log tail grows over SSE without reloading the page.
  await page.goto(`${dash.url}/builds/${id}`);
  const log = page.locator('[data-testid="log"]');
  await log.filter({ hasText: 'started' }).waitFor({ timeout: 30_000 });
  const early = await log.textContent() ?? '';
  assert.equal(finished(), false, 'the first log lines were seen while the build ran');
  await tb.screenshot('e2e-build-running');
  // Each platform's build steps print "built client|server: N bytes", on whole lines labelled
  // with the platform, however the two platforms' output interleaves.
  const built = (platform: string) => new RegExp(`^\\[${platform.replace('/', '\\/')}[^\\]\\n]*\\] built (client|server): \\d+ bytes$`, 'gm');
  // The steps run at the machine's pace (arm64 under emulation): wait for the build to report
  // them done, then give the page a bounded time to show what the frontend already has.
  await buildStepsFinished(id, / RUN sh common\/build\.sh /, 4);
  let late = '';
  await until('both platforms\' build steps in the log view', async () => {
    late = await log.textContent() ?? '';
    return ['linux/amd64', 'linux/arm64'].every((p) => (late.match(built(p)) ?? []).length === 2);
  }, 60_000).catch((err: Error) => { throw new Error(`${err.message}; the log view showed:\n${late.slice(-3000)}`); });
  // The view is appended to, never re-rendered: what it first showed stays, in the same order.
  assert.ok(late.length > early.length && late.startsWith(early), `the same log view grew:\n${early}\n---\n${late}`);

  release();
  const { outcome } = await done;
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const digest = outcome.result!.digest;
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  await page.locator('[data-testid="build-status"]', { hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
  await page.locator('p code', { hasText: digest }).waitFor({ timeout: 30_000 });
  assert.match(await page.locator('[data-testid="pushed"]').textContent() ?? '', new RegExp(`e2e/dashboard@${digest}`));
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    const cards = await page.locator(`[data-platform="${platform}"] [data-stage]`).allTextContents();
    assert.equal(cards.length, 4, `${platform}: base, client, server and the final stage`);
    for (const card of cards) assert.match(card, /done[\s\S]*worker worker-\d/, `${platform} stage shows done and its worker`);
  }
  assert.match(await page.locator('[data-platform="linux/arm64"]').textContent() ?? '', /emulated/);
  await tb.screenshot('e2e-build-done');
});

test('the frontend, workers and dashboard serve /metrics with what the build did', { skip, timeout: 150_000 }, async () => {
  const build = await twoPlatformBuild();
  build.release();
  const { outcome, before, after } = await build.done;
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const frontend = (name: string, labels?: Record<string, string>) => grew(before, after, 'frontend', name, labels);
  assert.equal(frontend('buildyard_builds_total', { status: 'succeeded' }), 1);
  assert.ok(outcome.bytesUploaded > 0);
  assert.equal(frontend('buildyard_context_bytes_uploaded_total'), outcome.bytesUploaded);
  assert.ok(frontend('buildyard_bytes_pushed_total') > 0, 'pushed layer bytes are counted');

  const workers = (name: string, labels?: Record<string, string>) => grew(before, after, 'workers', name, labels);
  // 4 stages per platform; arm64 runs emulated on this amd64 machine.
  assert.equal(workers('buildyard_stage_duration_seconds_count', { platform: 'linux/amd64', emulated: 'false' }), 4);
  assert.equal(workers('buildyard_stage_duration_seconds_count', { platform: 'linux/arm64', emulated: 'true' }), 4);
  assert.ok(workers('buildyard_cache_misses_total', { platform: 'linux/arm64' }) >= 3, 'the RUN steps executed');
  assert.ok(metricValue(after.workers.join('\n'), 'buildyard_bytes_pulled_total') > 0, 'busybox layers were pulled from the registry');

  assert.match(after.dashboard, /buildyard_queue_depth\{platform="linux\/arm64",class="emulated",state="waiting"\} \d+/);
  assert.ok(metricValue(after.dashboard, 'buildyard_queue_wait_seconds_count') > 0, 'the dashboard observed how long stage jobs waited');
});

test('draining a worker from the workers page puts the next build\'s stages on the other worker', { skip, timeout: 120_000 }, async (t) => {
  const { page } = tb;
  // The other tests want both workers, whichever order they run in.
  t.after(() => dash.state.registry.undrain('worker-1'));
  await page.goto(`${dash.url}/workers`);
  const row = page.locator('tr[data-worker="worker-1"]');
  await row.waitFor({ timeout: 30_000 });
  await page.locator('tr[data-worker="worker-2"]').waitFor({ timeout: 30_000 });
  page.once('dialog', (d) => void d.accept());
  await row.getByRole('button', { name: 'drain' }).click();
  await row.locator('td[data-field="state"]', { hasText: 'draining' }).waitFor({ timeout: 30_000 });
  await tb.screenshot('e2e-workers-drained');

  const id = `dash-e2e-drained-${Date.now().toString(36)}`;
  const outcome = await solve(cluster, example, { buildId: id, platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference }, noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const ran = new Set(outcome.events.map((e) => e.vertex?.workerId).filter(Boolean));
  assert.deepEqual([...ran], ['worker-2'], 'progress events name only the worker that was not drained');

  await page.goto(`${dash.url}/builds/${id}`);
  await page.locator('[data-testid="build-status"]', { hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
  const cards = page.locator('[data-platform="linux/amd64"] [data-stage]');
  await cards.first().waitFor({ timeout: 30_000 });
  const texts = await cards.allTextContents();
  assert.equal(texts.length, 4, 'four stages on the build page');
  for (const t of texts) assert.match(t, /worker worker-2/);
  await tb.screenshot('e2e-build-after-drain');
});

/** `du -s -B1 -x` of a worker's snapshots, contexts, blob cache and RUN cache mounts: what its disk figure must equal. */
function duStateDir(stateDir: string): number {
  return ['snapshots', 'contexts', 'blobs', 'cache-mounts'].reduce((n, part) => {
    const dir = join(stateDir, part);
    return n + (existsSync(dir) ? Number(execFileSync('du', ['-s', '-B1', '-x', dir], { encoding: 'utf8' }).split('\t')[0]) : 0);
  }, 0);
}

test('a build held by the tenant limit shows as waiting with why; build list columns, stage names and worker disk during and after real builds', { skip, timeout: 240_000 }, async () => {
  const { page } = tb;
  const api = async <T>(path: string) => (await (await dash.api(path)).json()) as T;
  // One stage at a time for this tenant: while the big build's first stage waits at the gate,
  // the small build's only stage is held back by the limit (in no BullMQ queue at all).
  await dash.state.scheduler.setTenantLimit('limited', 1);
  const id = Date.now().toString(36);
  const big = `dash-big-${id}`;
  const small = `dash-small-${id}`;
  const bigContext = join(work, big);
  const smallContext = join(work, small);
  cpSync(join(example, 'common'), join(bigContext, 'common'), { recursive: true });
  // The tool stage runs as the build platform (amd64) although the build is for arm64: it runs
  // natively on the amd64 workers; the build stage after it is emulated.
  writeFileSync(join(bigContext, 'Dockerfile'), [
    'ARG BASE', 'FROM --platform=$BUILDPLATFORM ${BASE} AS tool', `RUN echo ${big} > /tool && ${gates.wait(big)}`,
    'FROM ${BASE} AS build', 'COPY --from=tool /tool /tool', 'RUN echo "built on $(uname -m)"', '',
  ].join('\n'));
  cpSync(join(example, 'common'), join(smallContext, 'common'), { recursive: true });
  writeFileSync(join(smallContext, 'Dockerfile'), ['ARG BASE', 'FROM ${BASE}', `RUN echo ${small}`, ''].join('\n'));
  const token = cluster.tokens.limited;
  const bigDone = solve(cluster, bigContext, { buildId: big, platforms: ['linux/arm64'], buildArgs: { BASE: cluster.busybox.reference } }, { token });
  try {
    await gates.arrived(big, { unless: bigDone });
    const smallDone = solve(cluster, smallContext, {
      buildId: small, platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference },
      outputs: [{ type: 'image', attrs: { name: `${cluster.registry.host}/e2e/small:1`, push: 'true' } }],
    }, { token });

    // Queues page: the small build's stage waits, held by the tenant limit, and says so.
    await page.goto(`${dash.url}/`);
    const row = page.locator('table[data-testid="waiting"] tr[data-platform="linux/amd64"][data-tenant="limited"]');
    await row.locator('td[data-field="why"]', { hasText: 'tenant limit' }).waitFor({ timeout: 60_000 })
      .catch(async (err: Error) => assert.fail(`${err.message.split('\n')[0]}; /api/queues: ${JSON.stringify((await api<{ platforms: unknown }>('/api/queues')).platforms)}; small: ${JSON.stringify(await dash.state.scheduler.getBuild(small))}`));
    const seenWaitingAt = Date.now();
    assert.ok(Number(await row.locator('td[data-field="waiting"]').textContent()) >= 1);
    const running = page.locator('table[data-testid="waiting"] tr[data-platform="linux/arm64"][data-tenant="limited"] td[data-field="running"]');
    assert.equal(await running.textContent(), '1', 'the big build\'s gated stage runs');
    await tb.screenshot('e2e-queues-tenant-limit');
    const rows = (await api<{ platforms: PlatformTenantRow[] }>('/api/queues')).platforms;
    const held = rows.find((r) => r.platform === 'linux/amd64' && r.tenant === 'limited');
    assert.equal(held?.held['tenant-limit'], 1, JSON.stringify(rows));
    await until('the tenant-limit gauge on /metrics', async () => /buildyard_stages_waiting\{platform="linux\/amd64",tenant="limited",reason="tenant-limit"\} 1/.test(await (await dash.api('/metrics')).text()), 30_000);

    // The small build's page says what holds its stage (it was `ready` on worker `–`, unexplained).
    await page.goto(`${dash.url}/builds/${small}`);
    await page.locator('[data-platform="linux/amd64"] [data-stage] [data-field="waiting"]', { hasText: 'held by the tenant limit' }).waitFor({ timeout: 30_000 });

    // Builds list: both builds with their platforms, and the columns of the list.
    await page.goto(`${dash.url}/builds`);
    await page.locator(`tr[data-build="${small}"] td[data-field="platforms"]`, { hasText: 'linux/amd64' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator(`tr[data-build="${big}"] td[data-field="platforms"]`).textContent(), 'linux/arm64');
    assert.equal(await page.locator(`tr[data-build="${small}"] td[data-field="images"]`).textContent(), `${cluster.registry.host}/e2e/small:1`, 'the image name shows before anything is pushed');
    const headers = await page.locator('table[data-testid="builds"] thead th').allTextContents();
    for (const h of ['images', 'platforms', 'queued', 'ran', 'error']) assert.ok(headers.includes(h), `column ${h} in ${headers.join(', ')}`);

    // Build page while it runs: stages named as in the Dockerfile, steps and log lines too.
    await page.goto(`${dash.url}/builds/${big}`);
    const tool = page.locator('[data-platform="linux/arm64"] [data-name="tool"]');
    await tool.filter({ hasText: 'running' }).waitFor({ timeout: 30_000 });
    await tool.filter({ hasText: 'runs as linux/amd64' }).waitFor({ timeout: 30_000 });
    await page.locator('[data-platform="linux/arm64"] [data-name="build"]').waitFor({ timeout: 30_000 });
    const log = page.locator('[data-testid="log"]');
    await log.filter({ hasText: '[tool 2/2] RUN echo' }).waitFor({ timeout: 30_000 });
    await tb.screenshot('e2e-build-stage-names');

    // Workers page: each worker's disk, measured by the worker, shows while builds run.
    await page.goto(`${dash.url}/workers`);
    for (const w of cluster.workers) {
      await page.locator(`tr[data-worker="${w.id}"] td[data-field="disk"]:not([data-bytes=""])`).waitFor({ timeout: 60_000 });
    }
    await tb.screenshot('e2e-workers-disk');

    gates.open(big);
    const [bigOutcome, smallOutcome] = await Promise.all([bigDone, smallDone]);
    assert.equal(bigOutcome.error, undefined, bigOutcome.error?.message);
    assert.equal(smallOutcome.error, undefined, smallOutcome.error?.message);

    // After: the tool stage ran natively, the build stage emulated; the stages are named.
    await page.goto(`${dash.url}/builds/${big}`);
    await page.locator('[data-testid="build-status"]', { hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
    await page.locator('[data-name="tool"] [data-field="execution"]', { hasText: 'native' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('[data-name="build"] [data-field="execution"]').textContent(), 'emulated');
    assert.match(await page.locator('[data-name="build"]').textContent() ?? '', /\[build 3\/3\] RUN echo "built on \$\(uname -m\)"/);
    const logText = await page.locator('[data-testid="log"]').textContent() ?? '';
    assert.match(logText, /^\[linux\/arm64 build\] built on aarch64$/m, 'output lines carry their platform and stage');
    await tb.screenshot('e2e-build-native-emulated');

    // Builds list after: the small build waited for the slot (queue time) and ran briefly.
    await page.goto(`${dash.url}/builds`);
    await page.locator(`tr[data-build="${small}"] td[data-field="status"]`, { hasText: 'succeeded' }).waitFor({ timeout: 30_000 });
    const summary = (await api<{ builds: BuildSummary[] }>('/api/builds?tenant=limited')).builds.find((b) => b.buildId === small)!;
    assert.equal(summary.status, 'succeeded');
    assert.ok(summary.queueMs !== null && summary.queueMs >= seenWaitingAt - summary.createdMs, `queued ${summary.queueMs} ms, seen waiting ${seenWaitingAt - summary.createdMs} ms after it was created`);
    assert.ok(summary.runMs !== null && summary.runMs > 0 && summary.runMs + summary.queueMs <= summary.durationMs!, JSON.stringify(summary));
    assert.notEqual(await page.locator(`tr[data-build="${small}"] td[data-field="queued"]`).textContent(), '–');
    await tb.screenshot('e2e-builds-after');

    // The disk figure matches du of each worker's state dir once a measurement follows the builds.
    for (const w of cluster.workers) {
      let shown = -1;
      let du = -2;
      await until(`worker ${w.id}'s disk figure to match du`, async () => {
        await dash.state.measureWorkerDisks();
        const disk = (await api<{ workers: WorkerView[] }>('/api/workers')).workers.find((x) => x.id === w.id)?.disk;
        assert.deepEqual(Object.keys(disk?.parts ?? {}).sort(), ['cache', 'cachemounts', 'contexts', 'snapshots']);
        shown = disk?.totalBytes ?? -1;
        du = duStateDir(w.stateDir);
        return shown === du;
      }, 60_000).catch((err: Error) => assert.fail(`${err.message}: dashboard ${shown} B, du ${du} B`));
      assert.ok(shown > 0, `worker ${w.id} holds snapshots`);
    }
  } finally {
    gates.open(big);
    await bigDone.catch(() => undefined);
  }
});
