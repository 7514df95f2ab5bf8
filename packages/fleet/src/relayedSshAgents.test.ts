// The worker's side of SSH agent forwarding against real Redis and a real ssh-agent; the
// frontend's side here is SshRelay's own (the whole chain is test/e2e/sshForward.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { MAX_SSH_CONNS_PER_SOCKET, SshRelay, redisKeys } from '@buildyard/contracts';
import { sshAdd, sshRelayFixture, until } from '@buildyard/testkit';
import { relayedSshAgents } from './relayedSshAgents.js';

const keys = redisKeys('ssh-worker-test');
const ssh = sshRelayFixture('ssh-worker');

/** The frontend's side, reduced to SshRelay: every open request of `buildId` goes to the test's agent. */
function serveFrontend(relay: SshRelay, buildId: string, signal: AbortSignal): Promise<void> {
  return (async () => {
    for await (const request of relay.opens(buildId, signal)) {
      const conn = connect(ssh.agent.socket);
      signal.addEventListener('abort', () => conn.destroy(), { once: true });
      void relay.relay(conn, buildId, request.connId, 'frontend');
    }
  })();
}

test('a step\'s connections to the worker\'s socket reach the client\'s agent; one gone at once harms nothing; the socket closes with the step', async () => {
  const relay = new SshRelay(ssh.redis, randomBytes(32).toString('hex'), keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  const agents = relayedSshAgents(relay, buildId);
  assert.equal(await relayedSshAgents(relay, buildId).missing(''), 'no SSH key "" forwarded from the client');
  await relay.offer(buildId, ['default'], 60_000);
  assert.equal(await agents.missing(''), undefined);
  assert.equal(await agents.missing('deploy'), 'unset ssh forward key deploy');

  const stop = new AbortController();
  const frontend = serveFrontend(relay, buildId, stop.signal);
  const path = join(ssh.dir, 'agent.sock');
  const server = await agents.listen('default', path);
  try {
    assert.ok(statSync(path).isSocket());
    // A client that connects and goes before its connection is relayed.
    const gone = connect(path);
    gone.on('error', () => {});
    gone.once('connect', () => gone.destroy());
    const listed = await sshAdd(path, '-l');
    assert.equal(listed.code, 0, listed.out);
    assert.ok(listed.out.includes(ssh.agent.key.fingerprint), listed.out);
  } finally {
    await server.close();
    stop.abort();
    await frontend;
  }
  await assert.rejects(new Promise((resolve, reject) => { const c = connect(path); c.on('connect', resolve); c.on('error', reject); }), /ENOENT|ECONNREFUSED/);
});

test('the attacker: a step holding MAX_SSH_CONNS_PER_SOCKET connections open to its agent socket gets the next one closed at once, never relayed', async () => {
  const relay = new SshRelay(ssh.redis, randomBytes(32).toString('hex'), keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  const path = join(ssh.dir, `${randomBytes(4).toString('hex')}.sock`);
  const server = await relayedSshAgents(relay, buildId).listen('default', path);
  const steps: Socket[] = [];
  try {
    for (let i = 0; i < MAX_SSH_CONNS_PER_SOCKET; i++) {
      const step = connect(path);
      step.on('error', () => {});
      steps.push(step);
    }
    // No frontend serves them: each relayed connection is an open request waiting in Redis.
    await until('every held connection to be relayed', async () => (await ssh.redis.llen(keys.ssh.open(buildId))) === MAX_SSH_CONNS_PER_SOCKET);
    const refused = connect(path);
    refused.on('error', () => {});
    await new Promise<void>((resolve) => refused.once('close', () => resolve()));
    assert.equal(await ssh.redis.llen(keys.ssh.open(buildId)), MAX_SSH_CONNS_PER_SOCKET);
  } finally {
    for (const step of steps) step.destroy();
    await server.close();
    await relay.withdraw(buildId);
  }
});
