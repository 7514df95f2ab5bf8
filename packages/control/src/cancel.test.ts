// A Cancel that arrives while the frontend is still planning (the scheduler has not heard of the
// build yet) ends the build as cancelled: before, it was ignored and the build ran on.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { credentials, Metadata } from '@grpc/grpc-js';
import { CancelRequest, ControlClient, SolveRequest, StatusRequest, StatusResponse, type SolveEvent } from '@buildyard/proto';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { startRedis } from '@buildyard/testkit';
import { Frontend } from './index.js';

test('Cancel during planning ends the build as cancelled without it reaching the scheduler', { timeout: 60_000 }, async () => {
  // A "registry" that accepts connections and never answers: planning waits on it until cancelled.
  const held: Socket[] = [];
  let connected!: () => void;
  const planningStarted = new Promise<void>((resolve) => { connected = resolve; });
  const silent = createServer((socket) => { held.push(socket); connected(); });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentHost = `127.0.0.1:${(silent.address() as { port: number }).port}`;

  const redisService = await startRedis();
  const redis = new Redis(redisService.url);
  const sharedDir = mkdtempSync(join(tmpdir(), 'buildyard-cancel-'));
  const scheduler = new Scheduler(redisService.url, { tickMs: 0 });
  const workers = new WorkerRegistry(redisService.url);
  const frontend = new Frontend({
    redis, scheduler, workers, tokens: new Map([['secret-token', 'team']]), sharedDir, secretsKey: '', insecureRegistries: [silentHost],
    buildPlatform: 'linux/amd64', version: '0.0.0', maxContextBytes: 1 << 20, maxContextFiles: 100, maxLogBytesPerStep: 1 << 16,
  });
  const port = await frontend.listen('127.0.0.1:0');
  const control = new ControlClient(`127.0.0.1:${port}`, credentials.createInsecure());
  after(async () => {
    control.close();
    for (const s of held) s.destroy();
    silent.close();
    await frontend.close();
    await scheduler.close();
    await workers.close();
    redis.disconnect();
    await redisService.stop();
    rmSync(sharedDir, { recursive: true, force: true });
  });
  const md = new Metadata();
  md.set('authorization', 'Bearer secret-token');

  const buildId = `cancel-planning-${process.pid}`;
  const events: SolveEvent[] = [];
  const stream = control.solve(SolveRequest.fromPartial({ buildId, dockerfile: Buffer.from(`FROM ${silentHost}/base:1\nRUN true\n`), dockerfileName: 'Dockerfile', platforms: ['linux/amd64'] }), md);
  const ended = (async () => { for await (const e of stream) events.push(e as SolveEvent); })();
  await planningStarted;

  const cancelled = await new Promise<boolean>((resolve, reject) => control.cancel(CancelRequest.fromPartial({ buildId }), md, (err, res) => (err ? reject(err) : resolve(res.cancelled))));
  assert.equal(cancelled, true, 'Cancel reports that it stopped the build');
  await ended;
  const error = events.find((e) => e.error)?.error;
  assert.equal(error?.code, 'build.cancelled', `the stream ends with a cancellation, got ${JSON.stringify(error)}`);
  assert.match(error!.message, /cancelled by the client/);
  const status = await new Promise<StatusResponse>((resolve, reject) => control.status(StatusRequest.fromPartial({ buildId }), md, (err, res) => (err ? reject(err) : resolve(res))));
  assert.equal(status.builds[0]?.status, 'cancelled');
  assert.equal(await scheduler.getBuild(buildId), null, 'the scheduler never received the build');
});
