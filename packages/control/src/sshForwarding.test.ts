// The frontend's side of SSH agent forwarding against real Redis and a real ssh-agent: the
// worker's side of each test is SshRelay's own (a unix socket relayed as a worker relays it);
// the whole chain through a cluster is test/e2e/sshForward.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { Server, ServerCredentials, credentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { MAX_SSH_CONN_BYTES, MAX_SSH_CONNS_PER_BUILD, MAX_SSH_UNREAD_BYTES, SSH_FRAME_BYTES, SSH_WINDOW_BYTES, SSH_WINDOW_FRAMES, SshRelay, redisKeys } from '@buildyard/contracts';
import { SshClientMessage, SshForwardClient, SshForwardService, type SshServerMessage } from '@buildyard/proto';
import { sshAdd, sshRelayFixture, until } from '@buildyard/testkit';
import { SshSessions, forwardSshAgents, type SshAgentSource } from './sshForwarding.js';

const keys = redisKeys('ssh-test');
const secretsKey = randomBytes(32).toString('hex');
const ssh = sshRelayFixture('ssh-relay');

/** A worker's end: a unix socket whose connections `relay` carries as `buildId`'s agent `id` (`sockets`: the worker's side of each). */
async function workerSocket(relay: SshRelay, buildId: string, id: string): Promise<{ path: string; sockets: Set<Socket>; close(): void }> {
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
  return { path, sockets, close: () => { ended.abort(); for (const socket of sockets) socket.destroy(); server.close(); } };
}

/** The client's agent, recording which ids were dialled. */
function clientAgent(ids: string[]): SshAgentSource & { dialled: string[] } {
  const dialled: string[] = [];
  return { ids, dialled, dial: async (id) => { dialled.push(id); return connect(ssh.agent.socket); } };
}

// The build's relay keys share its hash tag: `{<prefix>:ssh:<build>}:...`.
const buildKeys = async (buildId: string) => ssh.redis.keys(`{${keys.prefix}:ssh:${buildId}}:*`);

/**
 * The fullest of the build's relayed connection lists now: its frames and bytes. Asserts the
 * window's bound (SSH_WINDOW_FRAMES frames and the direction's last, SSH_WINDOW_BYTES bytes) on the way.
 */
async function fullestList(buildId: string): Promise<{ frames: number; bytes: number }> {
  let frames = 0;
  let bytes = 0;
  for (const key of (await buildKeys(buildId)).filter((k) => k.includes(':conn:'))) {
    const items = await ssh.redis.lrangeBuffer(key, 0, -1);
    const size = items.reduce((n, item) => n + item.length, 0);
    assert.ok(size <= SSH_WINDOW_BYTES, `${key} holds ${size} bytes (${items.length} frames): more than the window's ${SSH_WINDOW_BYTES}`);
    assert.ok(items.length <= SSH_WINDOW_FRAMES + 1, `${key} holds ${items.length} frames: more than the window's ${SSH_WINDOW_FRAMES} and the last`);
    frames = Math.max(frames, items.length);
    bytes = Math.max(bytes, size);
  }
  return { frames, bytes };
}

/** `size` bytes whose every position tells where it belongs. */
const pattern = (size: number) => Buffer.from(Array.from({ length: size }, (_, i) => (i * 7 + (i >> 10)) & 0xff));

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

test('the attacker: a step that writes to its agent socket as fast as it can while the agent never reads is held back by the window: neither Redis nor the relay piles its bytes up, and all of them arrive once the agent reads', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  // The client's agent connection, which takes nothing until released (a slow reader).
  let release!: () => void;
  const released = new Promise<void>((resolve) => { release = resolve; });
  const received: Buffer[] = [];
  let receivedBytes = 0;
  const agent = new Duplex({ read() {}, write(chunk: Buffer, _enc, done) { void released.then(() => { received.push(chunk); receivedBytes += chunk.length; done(); }); } });
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, { ids: ['default'], dial: async () => agent }, stop.signal);
  const worker = await workerSocket(relay, buildId, 'default');
  // Under MAX_SSH_CONN_BYTES, so that all of it may pass; four windows and more.
  const sent = pattern(960 * 1024);
  assert.ok(sent.length > 3 * SSH_WINDOW_BYTES);
  const step = connect(worker.path);
  try {
    step.on('error', () => {});
    // All of it at once: what the relay does not take waits in the step's own socket.
    step.once('connect', () => { for (let i = 0; i < sent.length; i += 64 * 1024) step.write(sent.subarray(i, i + 64 * 1024)); });
    await until('the relay to stop reading the step, its window full', async () => {
      const fullest = await fullestList(buildId);
      const side = [...worker.sockets][0];
      return side !== undefined && side.isPaused() && fullest.frames >= SSH_WINDOW_FRAMES;
    });
    const [workerSide] = worker.sockets;
    // The relay holds what waits for a frame and no more: the rest is still the step's.
    assert.ok(workerSide!.readableLength <= 64 * 1024, `the worker's socket buffered ${workerSide!.readableLength} bytes`);
    assert.equal(receivedBytes, 0);
    release();
    await until('every byte to reach the agent', async () => { await fullestList(buildId); return receivedBytes === sent.length; });
    assert.ok(Buffer.concat(received).equals(sent), 'the agent got the step\'s bytes whole and in order');
  } finally {
    step.destroy();
    worker.close();
    stop.abort();
    await forwarding;
  }
  await until('the connection\'s lists to go', async () => (await buildKeys(buildId)).every((k) => !k.includes(':conn:')));
});

test('the attacker: a step that keeps an agent connection busy is cut off at MAX_SSH_CONN_BYTES however fast the agent takes it', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  // An agent connection that takes every byte and answers none.
  const agent = new Duplex({ read() {}, write(_chunk, _enc, done) { done(); } });
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, { ids: ['default'], dial: async () => agent }, stop.signal);
  const worker = await workerSocket(relay, buildId, 'default');
  try {
    const step = connect(worker.path);
    step.on('error', () => {});
    let written = 0;
    const closed = new Promise<void>((resolve) => step.once('close', () => resolve()));
    const chunk = Buffer.alloc(64 * 1024, 1);
    const pump = () => {
      while (!step.destroyed && written <= 2 * MAX_SSH_CONN_BYTES) {
        written += chunk.length;
        if (!step.write(chunk)) { step.once('drain', pump); return; }
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

/** A gRPC SshForward server on 127.0.0.1 serving `sessions` for tenant-a, and a client of it. */
async function sshForwardServer(sessions: SshSessions): Promise<{ client: SshForwardClient; close(): Promise<void> }> {
  const server = new Server();
  server.addService(SshForwardService, { session: (call: ServerDuplexStream<SshClientMessage, SshServerMessage>) => void sessions.handle(call, 'tenant-a') });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const client = new SshForwardClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return { client, close: async () => { client.close(); await new Promise<void>((resolve) => server.tryShutdown(() => resolve())); } };
}

test('the attacker: a client session whose agent connection sends without end while the step never reads loses that connection at MAX_SSH_UNREAD_BYTES; Redis holds no more than the window meanwhile', async () => {
  const relay = new SshRelay(ssh.redis, secretsKey, keys);
  const buildId = `b-${randomBytes(4).toString('hex')}`;
  await relay.offer(buildId, ['default'], 60_000);
  const sessions = new SshSessions();
  const grpc = await sshForwardServer(sessions);
  const call = grpc.client.session();
  call.on('error', () => {});
  // The client: once asked to open a connection, it sends 4 MiB on it at once, and notes the error it gets back.
  const teardown = new Promise<string>((resolve) => {
    call.on('data', (message: SshServerMessage) => {
      const frame = message.frame;
      if (frame?.open) {
        for (let i = 0; i < 128; i++) call.write(SshClientMessage.fromPartial({ frame: { conn: frame.conn, data: Buffer.alloc(SSH_FRAME_BYTES, i) } }));
      } else if (frame?.error) {
        resolve(frame.error);
      }
    });
  });
  const sessionId = `s-${randomBytes(6).toString('hex')}`;
  await new Promise<void>((resolve) => {
    call.once('data', (message: SshServerMessage) => { if (message.ready) resolve(); });
    call.write(SshClientMessage.fromPartial({ hello: { sessionId, ids: ['default'] } }));
  });
  const stop = new AbortController();
  const forwarding = forwardSshAgents(relay, buildId, sessions.get(sessionId, 'tenant-a'), stop.signal);
  const worker = await workerSocket(relay, buildId, 'default');
  const step = connect(worker.path);
  step.on('error', () => {});
  step.pause(); // never reads what the agent sends
  let done = false;
  void teardown.then(() => { done = true; });
  try {
    // While the client sends, the lists stay within the window (fullestList asserts it).
    await until('the frontend to tear the connection down', async () => { await fullestList(buildId); return done; });
    assert.equal(await teardown, `the client's SSH agent sent more than ${MAX_SSH_UNREAD_BYTES} bytes that the step has not read`);
    // The teardown follows the bytes in the window; the step, which reads none, keeps its end until it ends.
    const fullest = await fullestList(buildId);
    assert.ok(fullest.frames <= SSH_WINDOW_FRAMES + 1);
  } finally {
    step.destroy();
    worker.close();
    stop.abort();
    await forwarding;
    // As the CLI ends its session.
    call.end();
    call.cancel();
    await grpc.close();
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
