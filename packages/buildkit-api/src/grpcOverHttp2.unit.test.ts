// The session's gRPC client against a hostile peer: the client of a BuildKit session serves the
// calls the frontend makes, so what it answers must never take the frontend down or hold it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { BidiCall, GrpcCallError, MAX_SESSION_MESSAGE_BYTES, ReceiveBuffer, type Codec } from './grpcOverHttp2.js';

const bytes: Codec<Uint8Array, Uint8Array> = { encode: (m) => m, decode: (b) => b };

/** One call to a peer that answers it with `answer`; answers the call's outcome. */
async function callPeer(answer: (stream: ServerHttp2Stream) => void): Promise<unknown> {
  const server = createServer();
  server.on('stream', (stream) => { stream.on('error', () => {}); answer(stream); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const call = new BidiCall(session, '/moby.filesync.v1.FileSync/DiffCopy', {}, bytes);
    call.end();
    try {
      for await (const _ of call.messages()) { /* read to the end */ }
      return 'ended';
    } catch (err) {
      return err;
    }
  } finally {
    session.close();
    server.close();
  }
}

test('a status message that is not valid percent-encoding is kept as sent, not thrown out of the listener (which took the frontend down)', async () => {
  const outcome = await callPeer((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '2', 'grpc-message': '%' }));
    stream.end();
  });
  assert.ok(outcome instanceof GrpcCallError, String(outcome));
  assert.equal(outcome.code, 2);
  assert.equal(outcome.message, '%');
});

test('a message whose length prefix is over the limit ends the call at once, before its bytes are buffered', async () => {
  const outcome = await callPeer((stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(0xfffffff0, 1);
    stream.write(prefix);
    stream.write(Buffer.alloc(1024)); // and more would follow, for as long as it is read
  });
  assert.ok(outcome instanceof GrpcCallError, String(outcome));
  assert.equal(outcome.code, 8);
  assert.match(outcome.message, new RegExp(`^a session message of 4294967280 bytes is larger than ${MAX_SESSION_MESSAGE_BYTES}$`));
});

test('received bytes are reassembled across any frame boundaries, and a message sent as single bytes costs about its size, not its size squared', () => {
  const buffer = new ReceiveBuffer();
  const messages = [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 7), Buffer.from('last')];
  const wire = Buffer.concat(messages.map((m) => { const prefix = Buffer.alloc(5); prefix.writeUInt32BE(m.length, 1); return Buffer.concat([prefix, m]); }));
  const got: Buffer[] = [];
  // Frames of 1 to 9 bytes, then one large one: prefixes split across frames, too.
  for (let at = 0, n = 1; at < wire.length; at += n, n = n % 9 + 1) {
    buffer.push(wire.subarray(at, at > 1000 ? wire.length : at + n));
    if (at > 1000) at = wire.length;
    while (buffer.length >= 5 && buffer.length >= 5 + buffer.readUInt32BE(1)) got.push(buffer.take(5 + buffer.readUInt32BE(1)).subarray(5));
  }
  assert.deepEqual(got, messages);
  assert.equal(buffer.length, 0);

  // 4 MiB one byte at a time: appending each byte to a copy of the bytes before it is ~8 TB of copying.
  const size = 4 * 1024 * 1024;
  for (let i = 0; i < size; i++) buffer.push(Buffer.of(i & 0xff));
  const whole = buffer.take(size);
  assert.equal(whole.length, size);
  assert.equal(whole[size - 1], (size - 1) & 0xff);
});
