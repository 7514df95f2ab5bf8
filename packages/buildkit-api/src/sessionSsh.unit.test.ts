import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sshforward } from '@buildyard/proto';
import { sessionSshAgents, sshIds } from './sessionSsh.js';
import { grpcFrame, openSessionPeer, respondGrpc } from './sessionPeer.test-util.js';

test('the agent ids a Dockerfile mounts are the ones asked of the client (CheckAgent), "default" for none', () => {
  const ids = sshIds([
    'FROM busybox',
    'RUN --mount=type=ssh ssh-add -l',
    'RUN --mount=type=ssh,id=deploy,required=true --mount=type=secret,id=tok true',
    'RUN --mount=type=ssh,id=deploy,target=/s true',
    'RUN --mount=type=cache,target=/c true',
    '',
  ].join('\n'), 'Dockerfile');
  assert.deepEqual(ids, ['default', 'deploy']);
});

const CHECK_AGENT = '/moby.sshforward.v1.SSH/CheckAgent';
const FORWARD_AGENT = '/moby.sshforward.v1.SSH/ForwardAgent';

test('the attacker: a BuildKit client whose agent connection sends without end while the relay reads slowly is held back by HTTP/2 flow control: the frontend holds a window of it, not all', async () => {
  const total = 12 * 1024 * 1024;
  const message = 64 * 1024;
  const body = grpcFrame(sshforward.BytesMessage.encode({ data: Buffer.alloc(message, 5) }).finish());
  const peer = await openSessionPeer([CHECK_AGENT, FORWARD_AGENT], (stream, headers) => {
    respondGrpc(stream);
    if (headers[':path'] === CHECK_AGENT) { stream.end(grpcFrame(sshforward.CheckAgentResponse.encode({}).finish())); return; }
    // The agent's side: 12 MiB of answers at once, whether or not anyone asked (what the frontend
    // does not take stays with this client).
    for (let sent = 0; sent < total; sent += message) stream.write(body);
  });
  try {
    const source = await sessionSshAgents(peer.session, ['default'], new AbortController().signal);
    assert.deepEqual(source?.ids, ['default']);
    const agent = await source!.dial('default');
    // The relay reads this connection slowly (its window to the step is full, say): a message's
    // worth at a time; what the client got onto the session meanwhile and the relay has not read
    // is what the frontend holds for it.
    let consumed = 0;
    const before = peer.sentBytes();
    await new Promise<void>((resolve, reject) => {
      agent.on('error', reject);
      const readSome = () => {
        const chunk = agent.readableLength > 0 ? agent.read(Math.min(message, agent.readableLength)) as Buffer | null : null;
        if (chunk) consumed += chunk.length;
        const held = peer.sentBytes() - before - consumed / message * body.length;
        // The call's buffer (1 MiB), a message over it, the stream's HTTP/2 window and the connection's own buffer.
        assert.ok(held <= 1.5 * 1024 * 1024, `the frontend holds ${held} bytes of the agent's that the relay has not read (${consumed} read; ${agent.readableLength} in the connection's buffer)`);
        if (consumed >= 4 * 1024 * 1024) { resolve(); return; }
        setTimeout(readSome, 10);
      };
      agent.once('readable', readSome);
    });
    agent.destroy();
  } finally {
    await peer.close();
  }
});
