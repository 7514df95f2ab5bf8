// Reusable helpers for dashboard tests (API, browser, and the lead's cluster e2e test):
// start the dashboard over a Redis URL, write the frontend's build record, drive Chromium.
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { RedisCacheIndex } from '@buildyard/cache';
import { ProgressWriter, type VertexRef } from '@buildyard/progress';
import { DEFAULT_KEYS, type RedisKeys } from '@buildyard/contracts';
import { Scheduler, StageConsumer, WorkerRegistry, type StageSpec } from '@buildyard/scheduler';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { createDashboardServer, type DashboardServer, type DashboardServerOptions } from './api/createDashboardServer.js';
import type { BuildListStatus } from './api/types.js';

export const TEST_TOKENS = { readToken: 'read-token-for-tests', adminToken: 'admin-token-for-tests', metricsToken: 'metrics-token-for-tests' };
const here = dirname(fileURLToPath(import.meta.url));
/** The built UI (`npm run build -w @buildyard/dashboard`). */
export const UI_DIR = join(here, '..', 'dist', 'public');
export const ARTIFACTS_DIR = join(here, '..', '..', '..', 'test-artifacts', 'dashboard');

export interface RunningDashboard extends DashboardServer {
  url: string;
  /** fetch with the read (default), admin or metrics token. */
  api(path: string, init?: RequestInit & { as?: 'read' | 'admin' | 'metrics' | 'none' }): Promise<Response>;
}

/** Starts the dashboard on a free 127.0.0.1 port. Call close() in an after hook. */
export async function startDashboard(opts: Partial<DashboardServerOptions> & { redisUrl: string }): Promise<RunningDashboard> {
  const server = await createDashboardServer({ tokens: TEST_TOKENS, uiDir: UI_DIR, sampleIntervalMs: 500, ...opts });
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(server.app.server.address() as AddressInfo).port}`;
  return {
    ...server,
    url,
    api: (path, init = {}) => {
      const { as = 'read', ...rest } = init;
      const headers = new Headers(rest.headers);
      if (as !== 'none') headers.set('authorization', `Bearer ${TEST_TOKENS[`${as}Token`]}`);
      if (rest.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json');
      return fetch(url + path, { ...rest, headers });
    },
  };
}

export interface BuildRecordInput {
  buildId: string;
  tenant: string;
  status: BuildListStatus;
  platforms: string[];
  createdMs: number;
  finishedMs?: number;
  digest?: string;
  error?: string;
  verticesTotal?: number;
  verticesCached?: number;
  pushed?: string[];
}

/** Writes a build record exactly as the frontend's contract says (hash + sorted set). */
export async function writeBuildRecord(redis: Redis, b: BuildRecordInput, keys: RedisKeys = DEFAULT_KEYS): Promise<void> {
  await redis.multi()
    .hset(keys.build(b.buildId), {
      buildId: b.buildId, tenant: b.tenant, status: b.status, platforms: JSON.stringify(b.platforms),
      createdMs: b.createdMs, finishedMs: b.finishedMs ?? '', digest: b.digest ?? '', error: b.error ?? '',
      verticesTotal: b.verticesTotal ?? 0, verticesCached: b.verticesCached ?? 0, pushed: JSON.stringify(b.pushed ?? []),
    })
    .zadd(keys.builds, b.createdMs, b.buildId)
    .exec();
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  screenshot(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Chromium from Debian, headless, with a throwaway profile; never downloads a browser. */
export async function launchBrowser(): Promise<TestBrowser> {
  const profile = await mkdtemp(join(tmpdir(), 'buildyard-chromium-'));
  let context: BrowserContext;
  try {
    // Playwright takes the fresh --user-data-dir as launchPersistentContext's first argument.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
  } catch (err) {
    await rm(profile, { recursive: true, force: true });
    throw err;
  }
  const page = context.pages()[0] ?? await context.newPage();
  return {
    context, page,
    screenshot: async (name) => {
      await mkdir(ARTIFACTS_DIR, { recursive: true });
      const path = join(ARTIFACTS_DIR, `${name}.png`);
      await page.screenshot({ path, fullPage: true });
      return path;
    },
    close: async () => {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

export { until } from '@buildyard/testkit';

export interface SeededState {
  prefix: string;
  redis: Redis;
  scheduler: Scheduler;
  /** Succeeded two-stage linux/amd64 build run by worker `w-amd`, with progress and logs. */
  doneBuild: string;
  /** linux/arm64 build whose stage waits in the queue (its only worker `w-arm` never takes jobs). */
  queuedBuild: string;
  /** Progress writer of queuedBuild, still open: write to it to make the log tail move. */
  liveProgress: ProgressWriter;
  armVertex: VertexRef;
  close(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Real state through the real packages: workers registered in the WorkerRegistry (one consuming
 * with a StageConsumer), builds submitted through the Scheduler, progress through ProgressWriter,
 * cache entries through RedisCacheIndex, and the build records per the frontend's contract.
 */
export async function seedState(redisUrl: string): Promise<SeededState> {
  const prefix = `dash${process.pid}x${Date.now().toString(36)}`;
  const redis = new Redis(redisUrl);
  const scheduler = new Scheduler(redisUrl, { prefix, tickMs: 200, heartbeatTtlMs: 5000 });
  const registry = new WorkerRegistry(redis, { prefix, heartbeatTtlMs: 5000 });
  const consumer = new StageConsumer({
    redis: redisUrl, prefix, heartbeatMs: 300, heartbeatTtlMs: 5000, pollMs: 100,
    worker: { id: 'w-amd', nativePlatforms: ['linux/amd64'], emulatedPlatforms: ['linux/arm64'], capacity: 2, cacheBytes: () => 5_000_000 },
    handler: async (job) => { await sleep(30); return { layers: [`sha256:${'a'.repeat(64)}`], stage: job.stageId }; },
  });
  const writers: ProgressWriter[] = [];
  let beat: NodeJS.Timeout | undefined;
  const close = async () => {
    if (beat) clearInterval(beat);
    for (const w of writers) await w.close().catch(() => undefined);
    await consumer.close().catch(() => undefined);
    await scheduler.close().catch(() => undefined);
    await registry.close();
    await redis.quit().catch(() => undefined);
  };
  try {
    // A native arm64 worker that is alive but never consumes: arm64 stages stay queued for it.
    await registry.register({ id: 'w-arm', nativePlatforms: ['linux/arm64'], emulatedPlatforms: [], capacity: 1, cacheBytes: 123_456, version: 'test' });
    beat = setInterval(() => void registry.heartbeat('w-arm', { running: 0, cacheBytes: 123_456 }).catch(() => undefined), 1000);
    await consumer.start();

    const now = Date.now();
    const stage = (id: string, dependsOn: string[] = []): StageSpec => ({ id, dependsOn, cacheKey: '', payload: { id } });
    const doneBuild = `b-done-${prefix}`;
    await writeBuildRecord(redis, { buildId: doneBuild, tenant: 'acme', status: 'running', platforms: ['linux/amd64'], createdMs: now - 2000 });
    await scheduler.submitBuild({ buildId: doneBuild, tenant: 'acme', priority: 10, platforms: [{ platform: 'linux/amd64', stages: [stage('base'), stage('app', ['base'])] }] });
    const p1 = new ProgressWriter(redis, doneBuild);
    writers.push(p1);
    const vref = (stageId: string, n: number, platform = 'linux/amd64'): VertexRef => ({
      digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, name: `[${stageId} 1/1] RUN echo ${stageId}`, platform, stage: stageId,
      step: 1, steps: 1, workerId: 'w-amd', emulated: false,
    });
    await p1.emit({ type: 'build.accepted', buildId: doneBuild, platforms: ['linux/amd64'] });
    await p1.cached(vref('base', 1));
    const t0 = Date.now();
    await p1.started(vref('app', 2), t0);
    p1.log(vref('app', 2).digest, 'compiling app\n');
    await p1.finished(vref('app', 2), t0, t0 + 40);
    const final = await scheduler.waitForBuild(doneBuild);
    if (final.status !== 'done') throw new Error(`seed build ended ${final.status}: ${final.error ?? ''}`);
    await p1.emit({ type: 'build.result', buildId: doneBuild, digest: `sha256:${'d'.repeat(64)}`, images: [], pushed: ['127.0.0.1:5000/acme/app:latest'], metadata: {}, verticesTotal: 2, verticesCached: 1, durationMs: 1500 });
    await p1.close();
    await writeBuildRecord(redis, {
      buildId: doneBuild, tenant: 'acme', status: 'succeeded', platforms: ['linux/amd64'], createdMs: now - 2000, finishedMs: now,
      digest: `sha256:${'d'.repeat(64)}`, verticesTotal: 2, verticesCached: 1, pushed: [`127.0.0.1:5000/acme/app@sha256:${'d'.repeat(64)}`],
    });

    const queuedBuild = `b-queued-${prefix}`;
    await writeBuildRecord(redis, { buildId: queuedBuild, tenant: 'globex', status: 'running', platforms: ['linux/arm64'], createdMs: now - 1000 });
    await scheduler.submitBuild({ buildId: queuedBuild, tenant: 'globex', priority: 5, platforms: [{ platform: 'linux/arm64', stages: [stage('compile')] }] });
    const liveProgress = new ProgressWriter(redis, queuedBuild, { flushIntervalMs: 20 });
    writers.push(liveProgress);
    const armVertex = { ...vref('compile', 3, 'linux/arm64'), workerId: 'w-arm' };
    await liveProgress.emit({ type: 'build.accepted', buildId: queuedBuild, platforms: ['linux/arm64'] });
    await liveProgress.started(armVertex);
    liveProgress.log(armVertex.digest, 'first line of output\n');
    await liveProgress.flush();

    for (const [tenant, entries] of [['acme', [['k-small', 1000], ['k-big', 9_000_000], ['k-mid', 50_000]]], ['globex', [['k-g', 777]]]] as const) {
      const index = new RedisCacheIndex(redis, tenant);
      for (const [key, size] of entries) {
        await index.put({ key, description: `RUN ${key}`, platform: 'linux/amd64', layer: { digest: `sha256:${key.padEnd(64, '0').replace(/[^0-9a-f]/g, '0')}`, diffID: `sha256:${'e'.repeat(64)}`, size, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' } });
      }
    }
    return { prefix, redis, scheduler, doneBuild, queuedBuild, liveProgress, armVertex, close };
  } catch (err) {
    await close();
    throw err;
  }
}
