// The client's content store over the session, against a client that lies: it chooses how much
// it sends for a document and what bytes they are.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { SessionContentStore } from './sessionContent.js';
import type { ClientSession } from './SessionManager.js';

/** A session whose content Read answers `chunks` (any number of them, lazily) for every digest. */
function lyingClient(chunks: () => Iterable<Buffer>): { session: ClientSession; sent(): number } {
  let sent = 0;
  const call = {
    async send() {},
    end() {},
    cancel() {},
    async *messages() {
      for (const data of chunks()) { sent += data.length; yield { data }; }
    },
  };
  return { session: { supports: () => true, call: () => call } as unknown as ClientSession, sent: () => sent };
}

test('a document read whole stops at 8 MiB, whatever the client keeps sending, and must hash to its digest', async () => {
  const endless = lyingClient(function* () { for (;;) yield Buffer.alloc(1024 * 1024); });
  const store = new SessionContentStore(endless.session, 'local:/cache', new AbortController().signal);
  const digest = `sha256:${'a'.repeat(64)}`;
  await assert.rejects(store.read(digest), /more than 8388608 bytes, more than a document of an OCI layout holds/);
  assert.ok(endless.sent() <= 16 * 1024 * 1024, `read ${endless.sent()} bytes: the stream's read-ahead at most`);
  const other = lyingClient(function* () { yield Buffer.from('{"not":"it"}'); });
  await assert.rejects(new SessionContentStore(other.session, 'local:/cache', new AbortController().signal).read(digest), /the bytes sent do not match that digest/);
  const body = Buffer.from('{"schemaVersion":2}');
  const honest = lyingClient(function* () { yield body; });
  const real = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  assert.deepEqual(await new SessionContentStore(honest.session, 'local:/cache', new AbortController().signal).read(real), body);
});
