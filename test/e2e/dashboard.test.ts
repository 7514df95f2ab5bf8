// Issue 8 acceptance: the dashboard and the Prometheus metrics against a REAL cluster (Redis,
// registry seeded with busybox, buildyardd and two buildyard-worker processes), driven through
// gRPC and watched in Debian's Chromium. Screenshots go to test-artifacts/dashboard/e2e-*.png.
// Needs the dashboard UI built (`npm run build -w @buildyard/dashboard`, part of `npm test`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createMetrics } from '@buildyard/telemetry';
import { startCluster, type Cluster } from '@buildyard/testkit';
import type { SolveEvent } from '@buildyard/proto';
import { launchBrowser, startDashboard, TEST_TOKENS, UI_DIR, until, type RunningDashboard, type TestBrowser } from '../../apps/dashboard/src/dashboard.test-util.js';
import { solve, type SolveOutcome } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
const built = existsSync(join(UI_DIR, 'index.html'));
const skip = built ? false : `dashboard UI not built at ${UI_DIR}; run npm run build -w @buildyard/dashboard`;

let cluster: Cluster;
let dash: RunningDashboard;
let tb: TestBrowser;
let firstBuild: { id: string; outcome: SolveOutcome } | undefined;

before(async () => {
  if (!built) return;
  cluster = await startCluster({
    workers: 2,
    // One stage per worker at a time, so a two-platform build queues; health ports are free ones.
    env: { BUILDYARD_WORKER_CAPACITY: '1', BUILDYARD_WORKER_HEALTH_LISTEN: '127.0.0.1:0', BUILDYARD_HEALTH_LISTEN: '127.0.0.1:0' },
  });
  dash = await startDashboard({ redisUrl: cluster.redis.url, metrics: createMetrics() });
  tb = await launchBrowser();
  // Admin login once: the token becomes an HttpOnly cookie.
  await tb.page.goto(`${dash.url}/?token=${TEST_TOKENS.adminToken}`);
}, { timeout: 90_000 });

after(async () => {
  await tb?.close();
  await dash?.close();
  await cluster?.stop();
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

function healthUrl(output: string, what: string): string {
  // One pino line: the fields come before the message.
  const m = new RegExp(`"health":"(http://127\\.0\\.0\\.1:\\d+)"[^\\n]*"msg":"${what} health listening"`).exec(output);
  assert.ok(m, `${what} printed its health address: ${output.slice(-500)}`);
  return m[1];
}

test('a two-platform build shows in the builds and queue views while running, its log tails live, and it ends with its digests', { skip, timeout: 75_000 }, async () => {
  const { page } = tb;
  const id = `dash-e2e-${Date.now().toString(36)}`;
  const image = `${cluster.registry.host}/e2e/dashboard:1`;
  let finished = false;
  const events: SolveEvent[] = [];
  const building = solve(cluster, example, {
    buildId: id, platforms: ['linux/amd64', 'linux/arm64'], buildArgs: { BASE: cluster.busybox.reference },
    outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }],
  }, { onEvent: (e) => events.push(e) }).finally(() => { finished = true; });

  // Builds list: the row appears with status running before the build has finished.
  await page.goto(`${dash.url}/builds`);
  await page.locator(`tr[data-build="${id}"]`, { hasText: 'running' }).waitFor({ timeout: 20_000 });
  assert.equal(finished, false, 'the build was still running when the builds list showed it');
  await tb.screenshot('e2e-builds');

  // Queue view: the build's stage jobs show as waiting or active in a platform queue.
  await page.goto(`${dash.url}/`);
  await page.locator('table[data-testid="queues"] tbody tr').first().waitFor({ timeout: 10_000 });
  await until('a stage job in the queue view', async () => {
    const counts = await page.locator('table[data-testid="queues"] td[data-field="waiting"], table[data-testid="queues"] td[data-field="active"]').allTextContents();
    return counts.some((c) => Number(c) > 0);
  }, 15_000);
  assert.equal(finished, false, 'the queue view showed the build while it ran');
  await tb.screenshot('e2e-queues');

  // Build page: the log tail grows over SSE without reloading the page.
  await page.goto(`${dash.url}/builds/${id}`);
  const log = page.locator('[data-testid="log"]');
  await log.filter({ hasText: 'started' }).waitFor({ timeout: 20_000 });
  const early = await log.textContent() ?? '';
  assert.equal(finished, false, 'the first log lines were seen while the build ran');
  await tb.screenshot('e2e-build-running');
  await log.filter({ hasText: 'built client' }).filter({ hasText: 'built server' }).waitFor({ timeout: 60_000 });
  const late = await log.textContent() ?? '';
  assert.ok(late.length > early.length && late.startsWith(early.slice(0, 200)), 'the same log view grew');
  assert.doesNotMatch(early, /built server[\s\S]*built server/, 'both platforms\' server stages finished after the page was opened');

  const outcome = await building;
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const digest = outcome.result!.digest;
  assert.match(digest, /^sha256:[0-9a-f]{64}$/);
  await page.locator('[data-testid="build-status"]', { hasText: 'succeeded' }).waitFor({ timeout: 10_000 });
  await page.locator('p code', { hasText: digest }).waitFor({ timeout: 5000 });
  assert.match(await page.locator('[data-testid="pushed"]').textContent() ?? '', new RegExp(`e2e/dashboard@${digest}`));
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    const cards = await page.locator(`[data-platform="${platform}"] [data-stage]`).allTextContents();
    assert.equal(cards.length, 4, `${platform}: base, client, server and the final stage`);
    for (const card of cards) assert.match(card, /done[\s\S]*worker worker-\d/, `${platform} stage shows done and its worker`);
  }
  assert.match(await page.locator('[data-platform="linux/arm64"]').textContent() ?? '', /emulated/);
  await tb.screenshot('e2e-build-done');
  firstBuild = { id, outcome };
});

test('the frontend, workers and dashboard serve /metrics with what the build did', { skip, timeout: 20_000 }, async () => {
  assert.ok(firstBuild, 'the first build ran');
  const frontend = await (await fetch(`${healthUrl(cluster.frontendProcess.output(), 'buildyardd')}/metrics`)).text();
  assert.equal(metricValue(frontend, 'buildyard_builds_total', { status: 'succeeded' }), 1);
  assert.equal(metricValue(frontend, 'buildyard_context_bytes_uploaded_total'), firstBuild.outcome.bytesUploaded);
  assert.ok(firstBuild.outcome.bytesUploaded > 0);
  assert.ok(metricValue(frontend, 'buildyard_bytes_pushed_total') > 0, 'pushed layer bytes are counted');

  const workers = await Promise.all(cluster.workers.map(async (w) => (await fetch(`${healthUrl(w.process.output(), 'buildyard-worker')}/metrics`)).text()));
  const sum = (name: string, labels?: Record<string, string>) => workers.reduce((n, t) => n + metricValue(t, name, labels), 0);
  // 4 stages per platform; arm64 runs emulated on this amd64 machine.
  assert.equal(sum('buildyard_stage_duration_seconds_count', { platform: 'linux/amd64', emulated: 'false' }), 4);
  assert.equal(sum('buildyard_stage_duration_seconds_count', { platform: 'linux/arm64', emulated: 'true' }), 4);
  assert.ok(sum('buildyard_cache_misses_total', { platform: 'linux/arm64' }) >= 3, 'the RUN steps executed');
  assert.ok(sum('buildyard_bytes_pulled_total') > 0, 'busybox layers were pulled from the registry');

  const dashboard = await (await dash.api('/metrics')).text();
  assert.match(dashboard, /buildyard_queue_depth\{platform="linux\/arm64",class="emulated",state="waiting"\} \d+/);
  assert.ok(metricValue(dashboard, 'buildyard_queue_wait_seconds_count') > 0, 'the dashboard observed how long stage jobs waited');
});

test('draining a worker from the workers page puts the next build\'s stages on the other worker', { skip, timeout: 45_000 }, async () => {
  const { page } = tb;
  await page.goto(`${dash.url}/workers`);
  const row = page.locator('tr[data-worker="worker-1"]');
  await row.waitFor({ timeout: 10_000 });
  await page.locator('tr[data-worker="worker-2"]').waitFor({ timeout: 10_000 });
  page.once('dialog', (d) => void d.accept());
  await row.getByRole('button', { name: 'drain' }).click();
  await row.locator('td[data-field="state"]', { hasText: 'draining' }).waitFor({ timeout: 10_000 });
  await tb.screenshot('e2e-workers-drained');

  const id = `dash-e2e-drained-${Date.now().toString(36)}`;
  const outcome = await solve(cluster, example, { buildId: id, platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference }, noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const ran = new Set(outcome.events.map((e) => e.vertex?.workerId).filter(Boolean));
  assert.deepEqual([...ran], ['worker-2'], 'progress events name only the worker that was not drained');

  await page.goto(`${dash.url}/builds/${id}`);
  await page.locator('[data-testid="build-status"]', { hasText: 'succeeded' }).waitFor({ timeout: 10_000 });
  const cards = page.locator('[data-platform="linux/amd64"] [data-stage]');
  await cards.first().waitFor({ timeout: 10_000 });
  const texts = await cards.allTextContents();
  assert.equal(texts.length, 4, 'four stages on the build page');
  for (const t of texts) assert.match(t, /worker worker-2/);
  await tb.screenshot('e2e-build-after-drain');
});
