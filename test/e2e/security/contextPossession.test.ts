// Issue 14, item 3: "another tenant's file by its digest". Bob knows (or guesses) the digest of
// a file alice uploaded and names it in a raw ContextSync without sending content, hoping the
// shared store completes his context from alice's copy and his build then reads it. The server
// asks him for the content exactly as for a digest nobody has, and refuses the sync without it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { ContextSyncClient, type SyncRequest, type SyncResponse } from '@buildyard/proto';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { bearer, solve } from '../grpcClient.js';

let cluster: Cluster;
let work: string;
const nonce = `${process.pid}${Date.now()}`;

before(async () => {
  cluster = await startCluster({ workers: 1, tenants: ['alice', 'bob'] });
  work = mkdtempSync(join(tmpdir(), 'buildyard-possession-'));
});
after(async () => {
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Exchange { missing: string[]; contextId?: string; error?: ServiceError }

/** One ContextSync as an attacker writes it: entries, then `reply(missing)` as the upload. */
async function rawContextSync(token: string, entries: Omit<NonNullable<SyncRequest['entries']>, 'removed'>, reply: (missing: string[]) => SyncRequest[]): Promise<Exchange> {
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  const call = client.sync(bearer(token), { deadline: new Date(Date.now() + 30_000) });
  const out: Exchange = { missing: [] };
  try {
    call.write({ entries: { removed: [], ...entries } });
    call.write({ entriesDone: true });
    for await (const res of call as AsyncIterable<SyncResponse>) {
      if (res.missing) out.missing.push(...res.missing.digests);
      if (res.missingDone) { for (const m of reply(out.missing)) call.write(m); call.end(); }
      if (res.complete) out.contextId = res.complete.contextId;
    }
  } catch (err) {
    out.error = err as ServiceError;
  } finally {
    client.close();
  }
  return out;
}

const entry = (path: string, content: Buffer) => ({ path, mode: 0o100644, size: content.length, digest: `sha256:${createHash('sha256').update(content).digest('hex')}`, linkTarget: '', modTime: '0', xattrs: [] });
const dockerfile = (cmd: string) => Buffer.from(`FROM ${cluster.busybox.reference}\nCOPY . /ctx\nRUN ${cmd}\n`);

test('a ContextSync naming only the digest of another tenant\'s file is asked for the content and refused without it', async () => {
  // Alice builds with a private file in her context.
  const secret = Buffer.from(`alice's private key ${nonce}\n`);
  const aliceDir = join(work, 'alice');
  mkdirSync(aliceDir, { recursive: true });
  writeFileSync(join(aliceDir, 'id_ed25519'), secret);
  writeFileSync(join(aliceDir, 'Dockerfile'), dockerfile('wc -c /ctx/id_ed25519'));
  const alice = await solve(cluster, aliceDir, { platforms: ['linux/amd64'] }, { token: cluster.tokens.alice });
  assert.equal(alice.error, undefined, alice.error?.message);

  // Bob names alice's file by digest and size, with no content.
  const stolen = entry('stolen', secret);
  const guess = entry('guess', Buffer.from(`nobody has this ${nonce}\n`.padEnd(secret.length, '.').slice(0, secret.length)));
  const dockerfileEntry = entry('Dockerfile', dockerfile('cat /ctx/stolen'));
  const attempt = await rawContextSync(cluster.tokens.bob, { entries: [dockerfileEntry, stolen] }, () => [{ uploadDone: true }]);
  assert.ok(attempt.missing.includes(stolen.digest), 'alice\'s digest is reported missing to bob');
  assert.equal(attempt.contextId, undefined, 'no context id is issued');
  assert.equal(attempt.error?.code, status.INVALID_ARGUMENT);
  assert.match(attempt.error?.details ?? '', /requested contents were not sent/);

  // The answer reveals nothing: a digest nobody has gets the same treatment, word for word.
  const control = await rawContextSync(cluster.tokens.bob, { entries: [dockerfileEntry, { ...guess, path: 'stolen' }] }, () => [{ uploadDone: true }]);
  assert.deepEqual(attempt.missing.map((d) => (d === stolen.digest ? 'X' : d)), control.missing.map((d) => (d === guess.digest ? 'X' : d)));
  assert.equal(attempt.error?.details.replace(stolen.digest, 'X'), control.error?.details.replace(guess.digest, 'X'));

  // Forged bytes of the right size under alice's digest are refused too.
  const forged = await rawContextSync(cluster.tokens.bob, { entries: [stolen] }, () => [{ chunk: { digest: stolen.digest, data: Buffer.alloc(stolen.size, 0x41), last: true } }, { uploadDone: true }]);
  assert.equal(forged.contextId, undefined);
  assert.match(forged.error?.details ?? '', /does not match/);

  // A tenant who really holds the same file may use it (it is stored once): bob uploads it himself.
  const bobDir = join(work, 'bob');
  mkdirSync(bobDir, { recursive: true });
  writeFileSync(join(bobDir, 'stolen'), secret);
  writeFileSync(join(bobDir, 'Dockerfile'), dockerfile('cat /ctx/stolen'));
  const bob = await solve(cluster, bobDir, { platforms: ['linux/amd64'] }, { token: cluster.tokens.bob });
  assert.equal(bob.error, undefined, bob.error?.message);
  assert.ok(bob.bytesUploaded >= secret.length, `bob had to send the file himself (${bob.bytesUploaded} bytes uploaded)`);
});
