// The worker's side of SSH agent forwarding against real Redis and a real ssh-agent; the
// frontend's side here is SshRelay's own (the whole chain is test/e2e/sshForward.test.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { SshRelay, redisKeys } from '@buildyard/contracts';
import { startRedis, startSshAgent, type RedisService, type SshAgentService } from '@buildyard/testkit';
import { relayedSshAgents } from './relayedSshAgents.js';

const keys = redisKeys('ssh-worker-test');
let redisService: RedisService;
let redis: Redis;
let agent: SshAgentService;
let dir: string;

before(async () => {
  redisService = await startRedis();
  redis = new Redis(redisService.url);
  agent = await startSshAgent();
  dir = mkdtempSync(join(tmpdir(), 'buildyard-ssh-worker-'));
});
after(async () => {
  redis?.disconnect();
  await redisService?.stop();
  await agent?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function sshAdd(socket: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => execFile('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: socket } }, (err, stdout, stderr) => {
    resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
  }));
}

/** The frontend's side, reduced to SshRelay: every open request of `buildId` goes to the test's agent. */
function serveFrontend(relay: SshRelay, buildId: string, signal: AbortSignal): Promise<void> {
  return (async () => {
    for await (const request of relay.opens(buildId, signal)) {
      const conn = connect(agent.socket);
      signal.addEventListener('abort', () => conn.destroy(), { once: true });
      void relay.relay(conn, buildId, request.connId, 'frontend');
    }
  })();
}

test('a step\'s connections to the worker\'s socket reach the client\'s agent; one gone at once harms nothing; the socket closes with the step', async () => {
  const relay = new SshRelay(redis, randomBytes(32).toString('hex'), keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  const agents = relayedSshAgents(relay, buildId);
  assert.equal(await relayedSshAgents(relay, buildId).missing(''), 'no SSH key "" forwarded from the client');
  await relay.offer(buildId, ['default'], 60_000);
  assert.equal(await agents.missing(''), undefined);
  assert.equal(await agents.missing('deploy'), 'unset ssh forward key deploy');

  const stop = new AbortController();
  const frontend = serveFrontend(relay, buildId, stop.signal);
  const path = join(dir, 'agent.sock');
  const server = await agents.listen('default', path);
  try {
    assert.ok(statSync(path).isSocket());
    // A client that connects and goes before its connection is relayed.
    const gone = connect(path);
    gone.on('error', () => {});
    gone.once('connect', () => gone.destroy());
    const listed = await sshAdd(path);
    assert.equal(listed.code, 0, listed.out);
    assert.ok(listed.out.includes(agent.key.fingerprint), listed.out);
  } finally {
    await server.close();
    stop.abort();
    await frontend;
  }
  await assert.rejects(new Promise((resolve, reject) => { const c = connect(path); c.on('connect', resolve); c.on('error', reject); }), /ENOENT|ECONNREFUSED/);
});
