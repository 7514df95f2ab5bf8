// The client's secrets over the session, against a client that sends more than one answer or an
// oversized one: a secret is read once and bounded as buildkitd bounds it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fetchSecrets, MAX_SECRET_BYTES } from './sessionSecrets.js';
import type { ClientSession } from './SessionManager.js';

function client(answers: () => Iterable<Uint8Array>): { session: ClientSession; read(): number; cancelled(): boolean } {
  let read = 0;
  let cancelled = false;
  const call = {
    async send() {}, end() {}, cancel() { cancelled = true; },
    async *messages() { for (const data of answers()) { read++; yield { data }; } },
  };
  return { session: { supports: () => true, call: () => call } as unknown as ClientSession, read: () => read, cancelled: () => cancelled };
}

test('a secret is its first answer only (the call is cancelled), and one over 500 KB is refused', async () => {
  const streaming = client(function* () { for (;;) yield Buffer.from('token'); });
  assert.deepEqual(await fetchSecrets(streaming.session, ['npm'], new AbortController().signal), [{ id: 'npm', value: Buffer.from('token') }]);
  assert.equal(streaming.read(), 1);
  assert.ok(streaming.cancelled());
  const large = client(function* () { yield Buffer.alloc(MAX_SECRET_BYTES + 1); });
  await assert.rejects(fetchSecrets(large.session, ['big'], new AbortController().signal), /^Error: reading secret "big" from the client: the value is larger than 512000 bytes$/);
});
