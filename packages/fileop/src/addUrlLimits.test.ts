// ADD <url> against servers that stall: the idle timeout ends a silent download with a clear
// error, and the build's signal ends it at once, closing the connection, with no retry.
// Needs root (addUrl sets ownership). Servers listen on 127.0.0.1.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { addUrl } from './addUrl.js';
import { FileOpError } from './FileOpError.js';
import { workspace } from './fixtures.test-util.js';

const ws = workspace();
const servers: Server[] = [];
after(async () => {
  for (const s of servers) s.close();
  ws.cleanup();
});

/** A TCP server on 127.0.0.1 that hands each connection to `onConnection`. */
async function serve(onConnection: (socket: Socket) => void): Promise<{ url: string; connections: Socket[] }> {
  const connections: Socket[] = [];
  const server = createServer((socket) => {
    connections.push(socket);
    socket.resume(); // reads the request, so the client's hang-up is seen at once
    onConnection(socket);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/file`, connections };
}

test('a server that accepts and never answers fails the ADD with the idle timeout, on every attempt', async () => {
  const { url, connections } = await serve(() => { /* silent */ });
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  await assert.rejects(addUrl({ url, destRoot: dest, dest: '/f', idleTimeoutMs: 200, retries: 1 }), (e: unknown) => {
    assert.ok(e instanceof FileOpError && e.code === 'EFETCH', String(e));
    assert.match(e.message, /^ADD http:\/\/127\.0\.0\.1:\d+\/file: download failed \(2 attempts\): 127\.0\.0\.1:\d+ sent nothing for 200 ms; check the URL/);
    return true;
  });
  assert.equal(connections.length, 2);
  // The downloader hung up each connection it gave up on.
  await Promise.all(connections.map((c) => new Promise((resolve) => (c.closed ? resolve(undefined) : c.on('close', resolve)))));
});

test('a body that stops half-way fails with the idle timeout', async () => {
  const { url } = await serve((socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial'));
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  await assert.rejects(addUrl({ url, destRoot: dest, dest: '/f', idleTimeoutMs: 200, retries: 0 }), /sent nothing for 200 ms/);
});

test('aborting the build\'s signal ends the download at once: the connection closes, no retry', async () => {
  // Trickles a byte now and then, so no timeout would ever end it.
  const { url, connections } = await serve((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n');
    const drip = setInterval(() => socket.write('x'), 20);
    socket.on('close', () => clearInterval(drip));
    socket.on('error', () => clearInterval(drip));
  });
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  const controller = new AbortController();
  const download = addUrl({ url, destRoot: dest, dest: '/f', signal: controller.signal, retries: 3 });
  while (connections.length === 0) await new Promise((r) => setImmediate(r));
  // Not events.once: the server's next write may fail with ECONNRESET, which once() rejects on.
  const closed = new Promise((resolve) => connections[0].on('close', resolve));
  controller.abort(new Error('build cancelled'));
  await assert.rejects(download, /build cancelled/);
  await closed;
  assert.equal(connections.length, 1, 'no retry after a cancel');
  assert.deepEqual(await fsp.readdir(dest), [], 'nothing was placed');
});

test('a slow but steady download within the idle timeout succeeds', async () => {
  const { url } = await serve((socket) => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n');
    let sent = 0;
    const drip = setInterval(() => { socket.write('x'); if (++sent === 5) { clearInterval(drip); socket.end(); } }, 30);
  });
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  const r = await addUrl({ url, destRoot: dest, dest: '/f', idleTimeoutMs: 2000 });
  assert.equal(await fsp.readFile(r.path, 'utf8'), 'xxxxx');
});

test('a body larger than maxBytes ends the download at its first byte over, once, with nothing placed: a stream without end, or one that says its size', async () => {
  // No Content-Length, and it never ends: only the byte count can stop it.
  const { url, connections } = await serve((socket) => {
    socket.on('error', () => { /* the downloader hangs up mid-stream */ });
    socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n');
    const chunk = Buffer.alloc(64 * 1024);
    const pump = () => { while (!socket.destroyed && socket.write(chunk)); };
    socket.on('drain', pump);
    pump();
  });
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  await assert.rejects(addUrl({ url, destRoot: dest, dest: '/f', maxBytes: 1024 * 1024 }), (e: unknown) => {
    assert.ok(e instanceof FileOpError && e.code === 'ELIMIT', String(e));
    assert.match(e.message, /^ADD http:\/\/127\.0\.0\.1:\d+\/file: the download is larger than 1048576 bytes, the most this builder takes; serve a smaller file$/);
    return true;
  });
  assert.equal(connections.length, 1, 'no retry');
  assert.deepEqual(await fsp.readdir(dest), []);
  const declared = await serve((socket) => { socket.on('error', () => {}); socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5000000000\r\n\r\n'); });
  await assert.rejects(addUrl({ url: declared.url, destRoot: dest, dest: '/g', maxBytes: 1024 * 1024 }), /the download is larger than 1048576 bytes/);
});
