// preconnect(): `buildyard build` dials its builder before the build code has loaded, and the
// build's connectBuilder() goes on with that connection rather than opening another.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectivityState, type Client } from '@grpc/grpc-js';
import { BuilderStore } from './BuilderStore.js';
import { connectBuilder } from './connectBuilder.js';
import { preconnect, releasePreconnected } from './preconnect.js';

/** An HTTP/2 listener on loopback that records its sessions (a gRPC channel's connections). */
async function h2Listener(t: { after: (fn: () => unknown) => void }): Promise<{ server: Http2Server; endpoint: string; sessions: ServerHttp2Session[] }> {
  const server = createServer();
  const sessions: ServerHttp2Session[] = [];
  server.on('session', (s) => { sessions.push(s); s.on('error', () => undefined); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => { for (const s of sessions) s.destroy(); server.close(); });
  return { server, endpoint: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, sessions };
}

async function configDir(t: { after: (fn: () => unknown) => void }): Promise<NodeJS.ProcessEnv> {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-preconnect-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return { XDG_CONFIG_HOME: dir };
}

/** Resolves when the channel reaches `state`; rejects if it shuts down first. */
function reach(channel: ReturnType<Client['getChannel']>, state: connectivityState): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const now = channel.getConnectivityState(true);
      if (now === state) return resolve();
      if (now === connectivityState.SHUTDOWN) return reject(new Error('channel shut down'));
      channel.watchConnectivityState(now, Infinity, check);
    };
    check();
  });
}

test('preconnect dials the builder before any call, and the build takes that connection', async (t) => {
  const { server, endpoint, sessions } = await h2Listener(t);
  const env = await configDir(t);
  const dialled = once(server, 'session');
  await preconnect(endpoint, env);
  await dialled; // no call made yet
  const builder = await new BuilderStore(undefined).resolve(endpoint, env);
  const conn = connectBuilder(builder);
  t.after(() => conn.close());
  const channel = conn.control.getChannel();
  assert.equal(conn.contextSync.getChannel(), channel, 'both services share one channel');
  // Taken: releasing what is left of the preconnect leaves the build's channel alone.
  releasePreconnected();
  await reach(channel, connectivityState.READY);
  assert.equal(sessions.length, 1, 'the build opened a second connection');
});

test('preconnect to another builder than the build uses is closed by releasePreconnected', async (t) => {
  const a = await h2Listener(t);
  const b = await h2Listener(t);
  const env = await configDir(t);
  await preconnect(a.endpoint, env);
  const [session] = await once(a.server, 'session') as [ServerHttp2Session];
  const conn = connectBuilder(await new BuilderStore(undefined).resolve(b.endpoint, env));
  t.after(() => conn.close());
  await reach(conn.control.getChannel(), connectivityState.READY);
  assert.equal(b.sessions.length, 1);
  const closed = once(session, 'close');
  releasePreconnected();
  await closed;
});

test('preconnect to a builder that does not resolve fails nothing and dials nothing', async (t) => {
  const env = await configDir(t);
  await preconnect('no-such-builder', env);
  // The build then reports the unknown builder itself.
  await assert.rejects(new BuilderStore(undefined).resolve('no-such-builder', env), /no builder named "no-such-builder"/);
  releasePreconnected();
});
