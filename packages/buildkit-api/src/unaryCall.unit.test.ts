// The session's unary calls (GetSecret, Credentials, CheckAgent, Info) against a client that
// streams answers without end or sends an oversized one: each is read once, and a secret is
// bounded as buildkitd bounds it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fetchRegistryAuth } from './sessionAuth.js';
import { fetchSecrets, MAX_SECRET_BYTES } from './sessionSecrets.js';
import { sessionSshAgents } from './sessionSsh.js';
import type { ClientSession } from './SessionManager.js';

function client<T>(answers: () => Iterable<T>): { session: ClientSession; read(): number; cancelled(): boolean } {
  let read = 0;
  let cancelled = false;
  const call = {
    async send() {}, end() {}, cancel() { cancelled = true; },
    async *messages() { for (const answer of answers()) { read++; yield answer; } },
  };
  return { session: { supports: () => true, call: () => call } as unknown as ClientSession, read: () => read, cancelled: () => cancelled };
}

test('a secret is its first answer only (the call is cancelled), and one over 500 KB is refused', async () => {
  const streaming = client(function* () { for (;;) yield { data: Buffer.from('token') }; });
  assert.deepEqual(await fetchSecrets(streaming.session, ['npm'], new AbortController().signal), [{ id: 'npm', value: Buffer.from('token') }]);
  assert.equal(streaming.read(), 1);
  assert.ok(streaming.cancelled());
  const large = client(function* () { yield { data: Buffer.alloc(MAX_SECRET_BYTES + 1) }; });
  await assert.rejects(fetchSecrets(large.session, ['big'], new AbortController().signal), /^Error: reading secret "big" from the client: the value is larger than 512000 bytes$/);
});

test('registry credentials and an SSH agent check take the first answer of a client that answers without end', async () => {
  const credentials = client(function* () { for (;;) yield { Username: 'me', Secret: 'pw' }; });
  assert.deepEqual(await fetchRegistryAuth(credentials.session, ['registry.example'], new AbortController().signal), [{ registry: 'registry.example', username: 'me', password: 'pw', identityToken: '' }]);
  assert.equal(credentials.read(), 1);
  assert.ok(credentials.cancelled());
  const agents = client(function* () { for (;;) yield {}; });
  assert.deepEqual((await sessionSshAgents(agents.session, ['default'], new AbortController().signal))?.ids, ['default']);
  assert.equal(agents.read(), 1);
  assert.ok(agents.cancelled());
});
