// The idle deadline of what the frontend reads from a BuildKit client's session
// (limits.sessionIdleTimeoutMs), over a real Control.Session: a client that opens a transfer
// and then neither sends nor closes is cut off, and its stream is cancelled.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import type { ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { ContextStore } from '@buildyard/context';
import { contentStore, fsutil } from '@buildyard/proto';
import { receiveLocalToStore, sendFileToClient } from './fileSync.js';
import { SessionContentStore } from './sessionContent.js';
import { grpcFrame as frame, openSessionPeer, respondGrpc as respond } from './sessionPeer.test-util.js';

const { Packet, Packet_PacketType: T } = fsutil;
const DIFF_COPY = '/moby.filesync.v1.FileSync/DiffCopy';
const FILE_SEND = '/moby.filesync.v1.FileSend/DiffCopy';
const READ = '/containerd.services.content.v1.Content/Read';
const WRITE = '/containerd.services.content.v1.Content/Write';
const IDLE_MS = 200;

/** The gRPC messages of the frontend's side of a stream, decoded with `decode`, as they arrive. */
function onMessages<T>(stream: ServerHttp2Stream, decode: (b: Uint8Array) => T, each: (m: T) => void): void {
  let buf = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const size = buf.readUInt32BE(1);
      each(decode(buf.subarray(5, 5 + size)));
      buf = buf.subarray(5 + size);
    }
  });
}

async function withStore(fn: (store: ContextStore, root: string) => Promise<void>): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'buildyard-session-idle-'));
  try {
    await fn(new ContextStore({ root: join(tmp, 'store') }), join(tmp, 'store'));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** Regular files under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) found.push(join(e.parentPath, e.name));
  return found;
}

test('the attacker: a client that opens the build context\'s DiffCopy, sends part of a file and goes silent is cut off after the idle deadline; its stream is cancelled and nothing of it stays', async () => {
  let clientStream: ServerHttp2Stream | undefined;
  const peer = await openSessionPeer([DIFF_COPY], (stream, headers) => {
    assert.equal(headers[':path'], DIFF_COPY);
    clientStream = stream;
    respond(stream);
    stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_STAT, stat: { path: 'big', mode: 0o644, size: 1 << 20, modTime: '1700000000000000000' } })).finish()));
    stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_STAT })).finish()));
    // Asked for the file: a first piece of it, then nothing more, and the stream stays open.
    onMessages(stream, (b) => Packet.decode(b), (p) => {
      if (p.type === T.PACKET_REQ) stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID, data: Buffer.alloc(1000, 1) })).finish()));
    });
  }, IDLE_MS);
  try {
    await withStore(async (store, root) => {
      const receiving = receiveLocalToStore(peer.session, 'context', {}, store, 'tenant-a', undefined, new AbortController().signal);
      await assert.rejects(receiving, (err: Error) => {
        assert.equal(err.message, `the client sent nothing for ${IDLE_MS} ms while sending the build context "context", so the builder cancelled the transfer: check the client's connection and run the build again (limits.sessionIdleTimeoutMs)`);
        return true;
      });
      // The frontend cancelled the call: the client's end of the stream is closed, not left open.
      if (!clientStream!.closed) await once(clientStream!, 'close');
      assert.equal(clientStream!.rstCode, 8, 'the stream was reset with CANCEL');
      assert.deepEqual(await filesUnder(root), [], 'the part of the file received was dropped');
    });
  } finally {
    await peer.close();
  }
});

test('the attacker: a client that opens DiffCopy and sends nothing at all is cut off after the idle deadline', async () => {
  const peer = await openSessionPeer([DIFF_COPY], (stream) => respond(stream), IDLE_MS);
  try {
    await withStore(async (store) => {
      await assert.rejects(receiveLocalToStore(peer.session, 'context', {}, store, 'tenant-a', undefined, new AbortController().signal),
        /^Error: the client sent nothing for 200 ms while sending the build context "context"/);
    });
  } finally {
    await peer.close();
  }
});

test('the deadline is idle, not total: a slow upload that keeps sending takes many deadlines and is received whole', async () => {
  const content = Buffer.alloc(12 * 1000, 7);
  const peer = await openSessionPeer([DIFF_COPY], (stream) => {
    respond(stream);
    stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_STAT, stat: { path: 'slow', mode: 0o644, size: content.length, modTime: '1700000000000000000' } })).finish()));
    stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_STAT })).finish()));
    onMessages(stream, (b) => Packet.decode(b), (p) => {
      if (p.type === T.PACKET_REQ) {
        // 12 pieces, one every IDLE_MS / 3: four times the deadline in all.
        let sent = 0;
        const next = () => {
          if (sent === content.length) { stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID })).finish())); return; }
          stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID, data: content.subarray(sent, sent + 1000) })).finish()));
          sent += 1000;
          setTimeout(next, IDLE_MS / 3);
        };
        next();
      } else if (p.type === T.PACKET_FIN) {
        stream.write(frame(Packet.encode(Packet.fromPartial({ type: T.PACKET_FIN })).finish()));
        stream.end();
      }
    });
  }, IDLE_MS);
  try {
    await withStore(async (store) => {
      const started = Date.now();
      const { entries } = await receiveLocalToStore(peer.session, 'context', {}, store, 'tenant-a', undefined, new AbortController().signal);
      assert.ok(Date.now() - started > 3 * IDLE_MS, 'the upload took longer than the deadline');
      assert.equal(entries[0]!.digest, `sha256:${createHash('sha256').update(content).digest('hex')}`);
    });
  } finally {
    await peer.close();
  }
});

test('the attacker: a client whose content store Read (an OCI layout, a local cache) never answers is cut off after the idle deadline', async () => {
  let clientStream: ServerHttp2Stream | undefined;
  const peer = await openSessionPeer([READ, WRITE], (stream) => { clientStream = stream; respond(stream); }, IDLE_MS);
  try {
    const store = new SessionContentStore(peer.session, 'oci:layout1', new AbortController().signal);
    const digest = `sha256:${'a'.repeat(64)}`;
    await assert.rejects(store.read(digest), (err: Error) => {
      assert.equal(err.message, `the client sent nothing for ${IDLE_MS} ms while sending ${digest} from oci:layout1, so the builder cancelled the transfer: check the client's connection and run the build again (limits.sessionIdleTimeoutMs)`);
      return true;
    });
    if (!clientStream!.closed) await once(clientStream!, 'close');
    // A Write (a local cache export) whose client never replies: the same.
    await assert.rejects(store.write(digest, 3, () => Readable.from([Buffer.from('abc')])), /^Error: the client sent nothing for 200 ms while receiving sha256:a{64} into oci:layout1/);
  } finally {
    await peer.close();
  }
});

test('the attacker: a client that stops reading the output it asked for is cut off after the idle deadline, not held with the export', async () => {
  let clientStream: ServerHttp2Stream | undefined;
  // The client answers the call and never reads a byte of it: HTTP/2 flow control stops the sender.
  const peer = await openSessionPeer([FILE_SEND], (stream) => { clientStream = stream; stream.pause(); respond(stream); }, IDLE_MS);
  try {
    const endless = Readable.from((function* () { for (;;) yield Buffer.alloc(64 * 1024); })());
    await assert.rejects(sendFileToClient(peer.session, endless, new AbortController().signal),
      /^Error: the client took nothing for 200 ms while receiving the build's output, so the builder cancelled the transfer/);
    if (!clientStream!.closed) await once(clientStream!, 'close');
    endless.destroy();
  } finally {
    await peer.close();
  }
});

test('a client\'s content store call reads whole what the client sends, whatever the deadline, when it keeps sending', async () => {
  const body = Buffer.from('{"schemaVersion":2}');
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const peer = await openSessionPeer([READ, WRITE], (stream) => {
    respond(stream);
    onMessages(stream, (b) => contentStore.ReadContentRequest.decode(b), () => {
      stream.write(frame(contentStore.ReadContentResponse.encode(contentStore.ReadContentResponse.fromPartial({ data: body })).finish()));
      stream.end();
    });
  }, IDLE_MS);
  try {
    assert.deepEqual(await new SessionContentStore(peer.session, 'oci:layout1', new AbortController().signal).read(digest), body);
  } finally {
    await peer.close();
  }
});
