// A Cancel reaches the build wherever it is coordinated (real Redis): it is recorded in the
// build's record and announced to every frontend, so a frontend other than the coordinator can
// take it, a runner that starts after it (a takeover) honours it before planning, and another
// tenant's Cancel is refused without touching the build. A Cancel while the only frontend is
// still planning (the scheduler has not heard of the build yet) ends it as cancelled.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { AttachRequest, CancelRequest, ControlClient, SolveRequest, StatusRequest, type SolveEvent, type StatusResponse } from '@buildyard/proto';
import { BuildSecrets, DEFAULT_KEYS } from '@buildyard/contracts';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { startRedis } from '@buildyard/testkit';
import { Frontend } from './index.js';
import { BuildRequests } from './buildTakeover.js';

const TOKENS = new Map([['team-token', 'team'], ['rival-token', 'rival']]);

function metadata(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** Real Redis, a "registry" that never answers (planning waits on it until cancelled) and `count` frontends on one Redis. */
async function setUp(t: TestContext, count: number) {
  const held: Socket[] = [];
  let connected!: () => void;
  const planningStarted = new Promise<void>((resolve) => { connected = resolve; });
  const silent = createServer((socket) => { held.push(socket); connected(); });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentHost = `127.0.0.1:${(silent.address() as { port: number }).port}`;
  const redisService = await startRedis();
  const redis = new Redis(redisService.url);
  const sharedDir = mkdtempSync(join(tmpdir(), 'buildyard-cancel-anywhere-'));
  const scheduler = new Scheduler(redisService.url, { tickMs: 0 });
  const workers = new WorkerRegistry(redisService.url);
  const frontends: Frontend[] = [];
  const clients: ControlClient[] = [];
  for (let i = 0; i < count; i++) {
    const frontend = new Frontend({
      redis, scheduler, workers, tokens: TOKENS, sharedDir, secretsKey: '', insecureRegistries: [silentHost],
      buildPlatform: 'linux/amd64', version: '0.0.0', maxContextBytes: 1 << 20, maxContextFiles: 100, maxLogBytesPerStep: 1 << 16,
    });
    const port = await frontend.listen('127.0.0.1:0');
    frontends.push(frontend);
    clients.push(new ControlClient(`127.0.0.1:${port}`, credentials.createInsecure()));
  }
  t.after(async () => {
    for (const c of clients) c.close();
    for (const s of held) s.destroy();
    silent.close();
    for (const f of frontends) await f.close();
    await scheduler.close();
    await workers.close();
    redis.disconnect();
    await redisService.stop();
    rmSync(sharedDir, { recursive: true, force: true });
  });
  /** Starts a build on `client` whose planning hangs on the silent registry; `ended` collects its events. */
  const solveHeld = (client: ControlClient, buildId: string) => {
    const events: SolveEvent[] = [];
    const stream = client.solve(SolveRequest.fromPartial({ buildId, dockerfile: Buffer.from(`FROM ${silentHost}/base:1\nRUN true\n`), dockerfileName: 'Dockerfile', platforms: ['linux/amd64'] }), metadata('team-token'));
    const ended = (async () => { for await (const e of stream) events.push(e as SolveEvent); return events; })();
    return ended;
  };
  return { redis, scheduler, frontends, clients, planningStarted, solveHeld };
}

function cancel(client: ControlClient, buildId: string, token: string): Promise<boolean> {
  return new Promise((resolve, reject) => client.cancel(CancelRequest.fromPartial({ buildId }), metadata(token), (err, res) => (err ? reject(err) : resolve(res.cancelled))));
}

function assertCancelled(events: SolveEvent[]): void {
  const error = events.find((e) => e.error)?.error;
  assert.equal(error?.code, 'build.cancelled', `the build ends cancelled, got ${JSON.stringify(error)}`);
  assert.match(error!.message, /cancelled by the client/);
}

test('Cancel during planning ends the build as cancelled without it reaching the scheduler', { timeout: 60_000 }, async (t) => {
  const { clients, planningStarted, solveHeld, scheduler } = await setUp(t, 1);
  const buildId = `cancel-planning-${process.pid}`;
  const ended = solveHeld(clients[0], buildId);
  await planningStarted;
  assert.equal(await cancel(clients[0], buildId, 'team-token'), true, 'Cancel reports that it stopped the build');
  assertCancelled(await ended);
  const status = await new Promise<StatusResponse>((resolve, reject) => clients[0].status(StatusRequest.fromPartial({ buildId }), metadata('team-token'), (err, res) => (err ? reject(err) : resolve(res))));
  assert.equal(status.builds[0]?.status, 'cancelled');
  assert.equal(await scheduler.getBuild(buildId), null, 'the scheduler never received the build');
});

test('a Cancel sent to another frontend than the coordinating one cancels the build', { timeout: 60_000 }, async (t) => {
  const { frontends, clients, planningStarted, solveHeld, scheduler } = await setUp(t, 2);
  const buildId = `cancel-elsewhere-${process.pid}`;
  const ended = solveHeld(clients[0], buildId);
  await planningStarted;
  assert.equal(await cancel(clients[1], buildId, 'team-token'), true, 'the frontend taking the Cancel reports it stopped the build');
  assertCancelled(await ended);
  assert.equal((await frontends[0].records.get(buildId))?.status, 'cancelled');
  assert.equal(await scheduler.getBuild(buildId), null, 'the scheduler never received the build');
});

test('a Cancel recorded before the coordinator starts planning ends the build cancelled with no stage submitted', { timeout: 60_000 }, async (t) => {
  const { redis, frontends, clients, scheduler } = await setUp(t, 1);
  const [frontend] = frontends;
  const buildId = `cancel-before-plan-${process.pid}`;
  // Accepted by a frontend that stopped before its runner started: its record and request are all there is.
  await frontend.records.create({ buildId, tenant: 'team', platforms: ['linux/amd64'], coordinator: 'stopped-frontend' });
  await new BuildRequests(redis, DEFAULT_KEYS, new BuildSecrets(redis, '', DEFAULT_KEYS))
    .save(buildId, SolveRequest.fromPartial({ buildId, dockerfile: Buffer.from('FROM scratch\nENV A=1\n'), dockerfileName: 'Dockerfile', platforms: ['linux/amd64'] }));
  assert.equal(await cancel(clients[0], buildId, 'team-token'), true, 'Cancel accepts a build no runner runs yet');
  assert.deepEqual(await frontend.takeOverOrphanedBuilds(), [buildId]);
  const events: SolveEvent[] = [];
  for await (const e of clients[0].attach(AttachRequest.fromPartial({ buildId, fromStart: true }), metadata('team-token'))) events.push(e as SolveEvent);
  assertCancelled(events);
  assert.equal((await frontend.records.get(buildId))?.status, 'cancelled');
  assert.equal(await scheduler.getBuild(buildId), null, 'no stage was submitted');
});

test('another tenant\'s Cancel is refused and leaves the build running', { timeout: 60_000 }, async (t) => {
  const { frontends, clients, planningStarted, solveHeld } = await setUp(t, 2);
  const buildId = `cancel-rival-${process.pid}`;
  const ended = solveHeld(clients[0], buildId);
  await planningStarted;
  for (const client of clients) {
    await assert.rejects(cancel(client, buildId, 'rival-token'), (err: ServiceError) => err.code === grpcStatus.NOT_FOUND && /not found/.test(err.message));
  }
  const record = await frontends[0].records.get(buildId);
  assert.equal(record?.cancelRequested, '', 'nothing was recorded for the build');
  assert.ok(record?.status === 'queued' || record?.status === 'running', `the build goes on, got ${record?.status}`);
  // Its own tenant still can: the build was untouched until then.
  assert.equal(await cancel(clients[1], buildId, 'team-token'), true);
  assertCancelled(await ended);
});

test('the client that started a build, attached again after a cut, cancels it by leaving; another attached client leaving does not', { timeout: 60_000 }, async (t) => {
  const { frontends, clients, planningStarted, solveHeld } = await setUp(t, 2);
  const buildId = `cancel-on-leave-${process.pid}`;
  const ended = solveHeld(clients[0], buildId);
  await planningStarted;
  const attached = async (cancelOnLeave: boolean) => {
    const call = clients[1].attach(AttachRequest.fromPartial({ buildId, fromStart: true, cancelOnLeave }), metadata('team-token'));
    call.on('error', () => {}); // leaving ends the call with CANCELLED
    await new Promise<void>((resolve) => call.once('data', () => resolve()));
    return { leave: () => { call.cancel(); return new Promise<void>((resolve) => call.once('close', () => resolve())); } };
  };
  const watcher = await attached(false);
  await watcher.leave();
  // The owner's Attach goes on the same connection after the watcher's leave: once the owner
  // has its first event the frontend has seen the watcher go, and nothing was cancelled.
  const owner = await attached(true);
  const afterWatcher = await frontends[0].records.get(buildId);
  assert.equal(afterWatcher?.cancelRequested, '', 'a watcher leaving requested no cancel');
  assert.ok(afterWatcher?.status === 'queued' || afterWatcher?.status === 'running', `the build goes on, got ${afterWatcher?.status}`);
  await owner.leave();
  assertCancelled(await ended);
  assert.equal((await frontends[0].records.get(buildId))?.status, 'cancelled');
});
