// The frontend's side of SSH agent forwarding against real Redis and a real ssh-agent: the
// worker's side of each test is SshRelay's own (a unix socket relayed as a worker relays it);
// the whole chain through a cluster is test/e2e/sshForward.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { MAX_SSH_CONN_BYTES, MAX_SSH_CONNS_PER_BUILD, SshRelay, redisKeys } from '@buildyard/contracts';
import { sshAdd, sshRelayFixture, until } from '@buildyard/testkit';
import { forwardSshAgents, type SshAgentSource } from './sshForwarding.js';

const keys = redisKeys('ssh-test');
const secretsKey = randomBytes(32).toString('hex');
const ssh = sshRelayFixture('ssh-relay');

/** A worker's end: a unix socket whose connections `relay` carries as `buildId`'s agent `id`. */
async function workerSocket(relay: SshRelay, buildId: string, id: string): Promise<{ path: string; close(): void }> {
  const path = join(ssh.dir, `${randomBytes(6).toString('hex')}.sock`);
  const sockets = new Set<Socket>();
  const ended = new AbortController();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    relay.requestOpen(buildId, id).then((connId) => relay.relay(socket, buildId, connId, 'worker', ended.signal)).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  // As the worker when the step ends: whatever is still connected goes.
  return { path, close: () => { ended.abort(); for (const socket of sockets) socket.destroy(); server.close(); } };
}

/** The client's agent, recording which ids were dialled. */
function clientAgent(ids: string[]): SshAgentSource & { dialled: string[] } {
  const dialled: string[] = [];
  return { ids, dialled, dial: async (id) => { dialled.push(id); return connect(ssh.agent.socket); } };
}

const buildKeys = async (buildId: string) => ssh.redis.keys(`${keys.prefix}:ssh:${buildId}:*`);

test('ssh-add in a step lists and signs with the client\'s agent through the relay; nothing of it stays in Redis after the build', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  assert.equal(await relay.offered(buildId), undefined, 'no offer: the client forwards nothing');
  await relay.offer(buildId, ['default'], 60_000);
  assert.deepEqual(await relay.offered(buildId), ['default']);
  const client = clientAgent(['default']);
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, client, stop.signal);
  const worker = await workerSocket(relay, buildId, 'default');
  try {
    const listed = await sshAdd(worker.path, '-l');
    assert.equal(listed.code, 0, listed.out);
    assert.ok(listed.out.includes(ssh.agent.key.fingerprint), listed.out);
    // -T: a signature made by the client's agent, verified with the public key.
    const signed = await sshAdd(worker.path, '-T', ssh.agent.key.publicPath);
    assert.equal(signed.code, 0, signed.out);
    assert.deepEqual(client.dialled, ['default', 'default']);
    // Each connection's lists go once both its ends are done.
    await until('the relayed connections\' lists to go', async () => (await buildKeys(buildId)).every((k) => !k.includes(':conn:')));
  } finally {
    worker.close();
    stop.abort();
    await forwarding;
  }
  assert.equal(await relay.offered(buildId), undefined, 'the offer is withdrawn when the build ends');
  assert.deepEqual(await buildKeys(buildId), []);
});

test('an agent id the client does not forward is refused at the frontend: the client is never asked', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  const client = clientAgent(['default']);
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, client, stop.signal);
  const other = await workerSocket(relay, buildId, 'deploy');
  const forwarded = await workerSocket(relay, buildId, 'default');
  try {
    const refused = await sshAdd(other.path, '-l');
    assert.notEqual(refused.code, 0, refused.out);
    assert.doesNotMatch(refused.out, new RegExp(ssh.agent.key.fingerprint.replace(/[+/]/g, '\\$&')));
    assert.equal((await sshAdd(forwarded.path, '-l')).code, 0);
    assert.deepEqual(client.dialled, ['default'], 'only the forwarded id reached the client');
  } finally {
    other.close();
    forwarded.close();
    stop.abort();
    await forwarding;
  }
});

test('the attacker: open requests and frames not sealed for this build with the cluster\'s key reach no agent', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const victim = `victim-${randomBytes(4).toString('hex')}`;
  const attackerBuild = `attacker-${randomBytes(4).toString('hex')}`;
  await relay.offer(victim, ['default'], 60_000);
  await relay.offer(attackerBuild, ['default'], 60_000);

  // 1. A request genuinely sealed for the victim's build, copied into another build's list.
  await relay.requestOpen(victim, 'default');
  const [sealedForVictim] = await ssh.redis.lrangeBuffer(keys.ssh.open(victim), 0, 0);
  await ssh.redis.rpush(keys.ssh.open(attackerBuild), sealedForVictim);
  await ssh.redis.del(keys.ssh.open(victim));
  // 2. Someone who can write to Redis but lacks BUILDYARD_SECRETS_KEY asks for the victim's agent.
  const forger = new SshRelay(ssh.redis, randomBytes(32).toString('hex'), keys);
  const forged = await workerSocket(forger, victim, 'default');
  const forgedRun = sshAdd(forged.path, '-l');
  await until('the forged request to be queued', async () => (await ssh.redis.llen(keys.ssh.open(victim))) > 0);

  const victimClient = clientAgent(['default']);
  const attackerClient = clientAgent(['default']);
  const stop = new AbortController();
  const forwarding = [forwardSshAgents(relay, victim, victimClient, stop.signal), forwardSshAgents(relay, attackerBuild, attackerClient, stop.signal)];
  // Genuine requests queued behind the forged ones: once they are served, the forged ones were read and dropped.
  const genuineVictim = await workerSocket(relay, victim, 'default');
  const genuineAttacker = await workerSocket(relay, attackerBuild, 'default');
  try {
    assert.equal((await sshAdd(genuineVictim.path, '-l')).code, 0);
    assert.equal((await sshAdd(genuineAttacker.path, '-l')).code, 0);
    assert.deepEqual(victimClient.dialled, ['default'], 'the forged request never reached the victim\'s agent');
    assert.deepEqual(attackerClient.dialled, ['default'], 'the request moved from another build was dropped');
  } finally {
    stop.abort();
    await Promise.all(forwarding);
    forged.close();
    genuineVictim.close();
    genuineAttacker.close();
  }
  // The forged connection got no answer: ssh-add fails once the "worker" drops it.
  const run = await forgedRun;
  assert.notEqual(run.code, 0, run.out);
  assert.ok(!run.out.includes(ssh.agent.key.fingerprint), run.out);
});

test('a builder without the secrets key refuses to forward an agent rather than relay it in the clear', async () => {
  const relay = new SshRelay(ssh.redis, '', keys);
  await assert.rejects(relay.offer('b-nokey', ['default'], 60_000), /no secrets key \(BUILDYARD_SECRETS_KEY\)/);
});

test('the attacker: a step that writes requests to the agent and never reads the answers is cut off at MAX_SSH_CONN_BYTES, not piled up in Redis', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, clientAgent(['default']), stop.signal);
  const worker = await workerSocket(relay, buildId, 'default');
  try {
    const step = connect(worker.path);
    step.on('error', () => {});
    step.pause(); // never reads the agent's answers
    // SSH2_AGENTC_REQUEST_IDENTITIES, over and over: 5 bytes each.
    const requests = Buffer.concat(Array.from({ length: 64 * 1024 }, () => Buffer.from([0, 0, 0, 1, 11])));
    let written = 0;
    const closed = new Promise<void>((resolve) => step.once('close', () => resolve()));
    const pump = () => {
      while (!step.destroyed && written <= 2 * MAX_SSH_CONN_BYTES) {
        written += requests.length;
        if (!step.write(requests)) { step.once('drain', pump); return; }
      }
    };
    step.once('connect', pump);
    await closed;
    assert.ok(written <= 2 * MAX_SSH_CONN_BYTES, `the relay took ${written} bytes before it closed the connection`);
    await until('the connection\'s lists to go', async () => (await buildKeys(buildId)).every((k) => !k.includes(':conn:')));
  } finally {
    worker.close();
    stop.abort();
    await forwarding;
  }
});

test('the attacker: a build holding MAX_SSH_CONNS_PER_BUILD agent connections open gets the next one refused, without the client being asked', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  // An agent that accepts every connection and never answers: each stays open.
  const held: Duplex[] = [];
  const client: SshAgentSource = { ids: ['default'], dial: async () => { const conn = new Duplex({ read() {}, write(_c, _e, done) { done(); } }); held.push(conn); return conn; } };
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, client, stop.signal);
  const worker = await workerSocket(relay, buildId, 'default');
  const steps: Socket[] = [];
  try {
    for (let i = 0; i < MAX_SSH_CONNS_PER_BUILD; i++) {
      const step = connect(worker.path);
      step.on('error', () => {});
      steps.push(step);
    }
    await until('every connection to reach the client', async () => held.length === MAX_SSH_CONNS_PER_BUILD);
    const refused = connect(worker.path);
    refused.on('error', () => {});
    await new Promise<void>((resolve) => refused.once('close', () => resolve()));
    assert.equal(held.length, MAX_SSH_CONNS_PER_BUILD, 'the refused connection never reached the client');
  } finally {
    for (const step of steps) step.destroy();
    worker.close();
    stop.abort();
    await forwarding;
  }
});
