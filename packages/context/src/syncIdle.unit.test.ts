// The idle deadline of ContextSync (limits.sessionIdleTimeoutMs) over a real gRPC server: a
// client that opens a sync and then neither sends nor closes is cut off with DEADLINE_EXCEEDED
// and what it sent is dropped; one that keeps sending, however slowly, is not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { SyncResponse } from '@buildyard/proto';
import { ContextStore } from './ContextStore.js';
import { startSyncServer, type TestSyncServer } from './syncServer.test-util.js';

const IDLE_MS = 200;
let tmp: string;
let store: ContextStore;
let srv: TestSyncServer;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'buildyard-sync-idle-'));
  store = new ContextStore({ root: join(tmp, 'store') });
  srv = await startSyncServer(store, 'test', { idleTimeoutMs: IDLE_MS });
});
after(async () => {
  await srv?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const entry = (path: string, content: Buffer) => ({ path, mode: 0o100644, size: content.length, digest: sha(content), linkTarget: '', modTime: '0', xattrs: [] });

/** Regular files under the store (written or half-written contents). */
async function storedFiles(): Promise<string[]> {
  const found: string[] = [];
  for (const e of await readdir(join(tmp, 'store'), { withFileTypes: true, recursive: true })) if (e.isFile()) found.push(join(e.parentPath, e.name));
  return found;
}

/** The status the server ends `call` with (its 'error' event). */
function statusOf(call: NodeJS.EventEmitter): Promise<ServiceError> {
  return new Promise((resolve) => call.once('error', resolve));
}

test('the attacker: a client that opens ContextSync and sends nothing is cut off after the idle deadline with DEADLINE_EXCEEDED', async () => {
  const call = srv.client.sync();
  call.on('data', () => {});
  const err = await statusOf(call);
  assert.equal(err.code, status.DEADLINE_EXCEEDED);
  assert.equal(err.details, `the client sent nothing for ${IDLE_MS} ms while sending the build context (the entry list), so the builder cancelled the transfer: check the client's connection and run the build again (limits.sessionIdleTimeoutMs)`);
  assert.match(srv.errors.at(-1)!.message, /^the client sent nothing for 200 ms/);
});

test('the attacker: a client that goes silent half-way through a file is cut off after the idle deadline; the part it sent is dropped', async () => {
  const content = Buffer.alloc(600 * 1024, 3);
  const call = srv.client.sync();
  const failed = statusOf(call);
  call.write({ entries: { entries: [entry('big', content)], removed: [] } });
  call.write({ entriesDone: true });
  call.on('data', (res: SyncResponse) => {
    // Asked for it: the first half, not the last chunk, then silence (the call stays open).
    if (res.missingDone) call.write({ chunk: { digest: sha(content), data: content.subarray(0, 300 * 1024), last: false } });
  });
  const err = await failed;
  assert.equal(err.code, status.DEADLINE_EXCEEDED);
  assert.match(err.details, /^the client sent nothing for 200 ms while sending the build context \(the upload\)/);
  assert.deepEqual(await storedFiles(), [], 'the half-written content was removed');
});

test('the deadline is idle, not total: an upload whose chunks arrive slowly, over many deadlines, completes', async () => {
  const content = Buffer.alloc(8 * 1024, 9);
  const call = srv.client.sync();
  call.write({ entries: { entries: [entry('slow', content)], removed: [] } });
  call.write({ entriesDone: true });
  const done = new Promise<string>((resolve, reject) => {
    call.on('error', reject);
    call.on('data', (res: SyncResponse) => {
      if (res.complete) resolve(res.complete.contextId);
      if (!res.missingDone) return;
      // 8 chunks, one every IDLE_MS / 2: twice the deadline and more in all.
      let at = 0;
      const next = () => {
        const last = at + 1024 >= content.length;
        call.write({ chunk: { digest: sha(content), data: content.subarray(at, at + 1024), last } });
        at += 1024;
        if (!last) { setTimeout(next, IDLE_MS / 2); return; }
        call.write({ uploadDone: true });
        call.end();
      };
      next();
    });
  });
  const started = Date.now();
  assert.match(await done, /^sha256:[a-f0-9]{64}$/);
  assert.ok(Date.now() - started > 2 * IDLE_MS, 'the upload took longer than the deadline');
});
