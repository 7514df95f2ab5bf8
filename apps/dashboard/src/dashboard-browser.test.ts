// Browser tests: Debian's Chromium (playwright-core) against the built UI over real Redis state.
// Needs the UI built first (`npm run build -w @buildyard/dashboard`, part of `npm test`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ProgressWriter } from '@buildyard/progress';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { launchBrowser, seedState, startDashboard, TEST_TOKENS, UI_DIR, writeBuildRecord, type RunningDashboard, type SeededState, type TestBrowser } from './dashboard.test-util.js';

const built = existsSync(join(UI_DIR, 'index.html'));
let redis: RedisService;
let seed: SeededState;
let dash: RunningDashboard;
let tb: TestBrowser;

before(async () => {
  if (!built) return;
  redis = await startRedis();
  seed = await seedState(redis.url);
  dash = await startDashboard({ redisUrl: redis.url, prefix: seed.prefix });
  tb = await launchBrowser();
  // Log in as admin once: the token becomes an HttpOnly cookie and leaves the URL.
  await tb.page.goto(`${dash.url}/?token=${TEST_TOKENS.adminToken}`);
  assert.equal(new URL(tb.page.url()).search, '');
});
after(async () => {
  await tb?.close();
  await dash?.close();
  await seed?.close();
  await redis?.stop();
});

const skip = built ? false : `UI not built at ${UI_DIR}; run npm run build -w @buildyard/dashboard`;
// Waits for what the page shows: a deadline only against a hang, long enough for Chromium on a
// loaded machine.
const WAIT_MS = 30_000;

test('the queue view shows the queued arm64 stage', { skip }, async () => {
  const { page } = tb;
  await page.goto(`${dash.url}/`);
  const waiting = page.locator('tr[data-queue="stages-linux-arm64-native"] td[data-field="waiting"]');
  await waiting.waitFor({ timeout: WAIT_MS });
  assert.equal(await waiting.textContent(), '1');
  await page.locator('[data-testid="chart-stages-linux-arm64-native"] canvas').waitFor({ timeout: WAIT_MS });
  await tb.screenshot('queues');
});

test('the build page shows the DAG and pushed digests, and its log tail updates live', { skip }, async () => {
  const { page } = tb;
  await page.goto(`${dash.url}/builds/${seed.doneBuild}`);
  await page.locator('[data-platform="linux/amd64"] [data-stage="app"]').waitFor({ timeout: WAIT_MS });
  assert.match(await page.locator('[data-stage="base"]').textContent() ?? '', /cached/);
  assert.match(await page.locator('[data-stage="app"]').textContent() ?? '', /worker w-amd/);
  assert.match(await page.locator('[data-testid="pushed"]').textContent() ?? '', /127\.0\.0\.1:5000\/acme\/app@sha256:d{64}/);
  await page.locator('[data-testid="log"]', { hasText: 'compiling app' }).waitFor({ timeout: WAIT_MS });
  await tb.screenshot('build-done');

  await page.goto(`${dash.url}/builds/${seed.queuedBuild}`);
  const log = page.locator('[data-testid="log"]');
  await log.filter({ hasText: 'first line of output' }).waitFor({ timeout: WAIT_MS });
  assert.doesNotMatch(await log.textContent() ?? '', /appeared while watching/);
  seed.liveProgress.log(seed.armVertex.digest, 'this line appeared while watching\n');
  await seed.liveProgress.flush();
  await log.filter({ hasText: 'this line appeared while watching' }).waitFor({ timeout: WAIT_MS });
  await tb.screenshot('build-live');
});

test('the live log appends whole lines per platform and keeps the order it first showed', { skip }, async () => {
  const { page } = tb;
  const buildId = `b-log-${Date.now().toString(36)}`;
  const platforms = ['linux/amd64', 'linux/arm64'];
  await writeBuildRecord(seed.redis, { buildId, tenant: 'acme', status: 'running', platforms, createdMs: Date.now() });
  const progress = new ProgressWriter(seed.redis, buildId, { flushIntervalMs: 20 });
  const [amd, arm] = platforms.map((platform, i) => ({ ...seed.armVertex, digest: `sha256:${String(7 + i).repeat(64)}`, platform, stage: 'client', name: `[client 1/1] RUN make (${platform})` }));
  await progress.emit({ type: 'build.accepted', buildId, platforms });
  await progress.started(amd);
  await progress.started(arm);
  progress.log(amd.digest, 'amd line 1\n');
  progress.log(arm.digest, 'arm line 1\n');
  await progress.flush();

  await page.goto(`${dash.url}/builds/${buildId}`);
  const log = page.locator('[data-testid="log"]');
  await log.filter({ hasText: 'arm line 1' }).waitFor({ timeout: WAIT_MS });
  const early = await log.textContent() ?? '';
  // Both platforms write half a line, then the rest: the chunks interleave in the stream.
  progress.log(amd.digest, 'amd li');
  progress.log(arm.digest, 'arm li');
  await progress.flush();
  progress.log(arm.digest, 'ne 2\n');
  progress.log(amd.digest, 'ne 2\n');
  await progress.finished(amd, 1, 2);
  await progress.finished(arm, 1, 2);
  await progress.close();
  await log.filter({ hasText: 'RUN make (linux/arm64) done' }).waitFor({ timeout: WAIT_MS });
  const late = await log.textContent() ?? '';
  assert.ok(late.startsWith(early), `the view was appended to:\n${early}\n---\n${late}`);
  assert.match(late, /^\[linux\/amd64 client\] amd line 2$/m);
  assert.match(late, /^\[linux\/arm64 client\] arm line 2$/m);
  await tb.screenshot('build-log-appended');

  // Opened again, the page shows the same lines in the same order.
  await page.reload();
  await log.filter({ hasText: 'RUN make (linux/arm64) done' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await log.textContent(), late);
});

test('the workers page shows a worker as draining after clicking drain', { skip }, async () => {
  const { page } = tb;
  await page.goto(`${dash.url}/workers`);
  const row = page.locator('tr[data-worker="w-arm"]');
  await row.waitFor({ timeout: WAIT_MS });
  assert.equal((await row.locator('td[data-field="state"]').textContent())?.trim(), 'active');
  page.once('dialog', (d) => void d.accept());
  await row.getByRole('button', { name: 'drain' }).click();
  await row.locator('td[data-field="state"]', { hasText: 'draining' }).waitFor({ timeout: WAIT_MS });
  assert.equal(await seed.scheduler.registry.isDraining('w-arm'), true);
  await tb.screenshot('workers');
});

test('the builds list filters and the cache page lists tenants', { skip }, async () => {
  const { page } = tb;
  await page.goto(`${dash.url}/builds`);
  await page.locator(`tr[data-build="${seed.queuedBuild}"]`).waitFor({ timeout: WAIT_MS });
  await page.getByLabel('status').selectOption('succeeded');
  await page.locator(`tr[data-build="${seed.queuedBuild}"]`).waitFor({ state: 'detached', timeout: WAIT_MS });
  assert.equal(await page.locator(`tr[data-build="${seed.doneBuild}"]`).count(), 1);
  await tb.screenshot('builds');
  await page.goto(`${dash.url}/cache`);
  await page.locator('tr[data-tenant="acme"]').waitFor({ timeout: WAIT_MS });
  assert.match(await page.locator('tr[data-tenant="acme"]').textContent() ?? '', /8\.6 MiB/);
  await tb.screenshot('cache');
});
