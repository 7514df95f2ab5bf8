import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, truncate, writeFile, readlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { SyncRequest, SyncResponse } from '@buildyard/proto';
import { ContextStore, readManifest } from './ContextStore.js';
import { syncContext } from './syncContext.js';
import { materializeContext } from './materializeContext.js';
import { walkContext } from './walkContext.js';
import { startSyncServer, type TestSyncServer } from './syncServer.test-util.js';

let tmp: string;
let store: ContextStore;
let srv: TestSyncServer;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'buildyard-context-'));
  store = new ContextStore({ root: join(tmp, 'store'), maxContextBytes: 300 * 1024 * 1024, maxFiles: 20_000 });
  srv = await startSyncServer(store);
});
after(async () => {
  await srv?.stop();
  await rm(tmp, { recursive: true, force: true });
});

async function makeDir(name: string, files: Record<string, string>): Promise<string> {
  const dir = join(tmp, name);
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

const cacheDir = () => join(tmp, 'client-cache');

test('first sync uploads everything, a second sync after one change uploads only that file', async () => {
  const dir = await makeDir('incr', { 'a.txt': 'alpha-unique-1', 'src/b.txt': 'bravo-unique-1', 'src/c.txt': 'charlie-unique-1' });
  const r1 = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  assert.equal(r1.files, 3);
  assert.equal(r1.bytesUploaded, 'alpha-unique-1'.length + 'bravo-unique-1'.length + 'charlie-unique-1'.length);
  assert.equal(srv.results.at(-1)!.uploaded.length, 3);
  assert.match(r1.contextId, /^sha256:[a-f0-9]{64}$/);

  // Unchanged: nothing uploaded, same id.
  const r2 = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  assert.equal(r2.contextId, r1.contextId);
  assert.equal(r2.bytesUploaded, 0);

  await writeFile(join(dir, 'src/b.txt'), 'bravo-changed-2!');
  const r3 = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  assert.notEqual(r3.contextId, r1.contextId);
  assert.equal(r3.bytesUploaded, 'bravo-changed-2!'.length);
  const last = srv.results.at(-1)!;
  assert.equal(last.uploaded.length, 1);
  assert.equal(last.bytesUploaded, 'bravo-changed-2!'.length);
  const manifest = await readManifest(store, r3.contextId);
  assert.deepEqual(manifest.map((e) => e.path), ['a.txt', 'src', 'src/b.txt', 'src/c.txt']);
  assert.equal(await store.tenantHas('test', r3.contextId), true);
  assert.equal(await store.tenantHas('other', r3.contextId), false);
});

test('identical files in two contexts are stored once', async () => {
  const shared = 'shared-content-'.repeat(1000);
  const d1 = await makeDir('dedupe1', { 'x/shared.bin': shared, 'one.txt': 'only in one' });
  const d2 = await makeDir('dedupe2', { 'y/copy-of-shared.bin': shared, 'two.txt': 'only in two' });
  const before = await countBlobs();
  const r1 = await syncContext(srv.client, d1, { cacheDir: false });
  const r2 = await syncContext(srv.client, d2, { cacheDir: false });
  assert.equal(r1.bytesUploaded, shared.length + 'only in one'.length);
  assert.equal(r2.bytesUploaded, 'only in two'.length);
  // 3 distinct contents + 2 manifests.
  assert.equal((await countBlobs()) - before, 5);
});

async function countBlobs(): Promise<number> {
  let n = 0;
  for await (const _ of store.content.list()) n++;
  return n;
}

test('.dockerignore with ! exceptions re-includes files under an excluded directory', async () => {
  const dir = await makeDir('ignore', {
    'build/keep.txt': 'keep', 'build/drop.txt': 'drop', 'build/sub/deep.txt': 'deep',
    'logs/a.log': 'a', 'logs/important.log': 'imp', 'main.go': 'package main', 'node_modules/x/index.js': 'x',
  });
  const dockerignore = ['build', '!build/keep.txt', 'logs/*.log', '!logs/important.log', 'node_modules'];
  const r = await syncContext(srv.client, dir, { dockerignore, cacheDir: false });
  const paths = (await readManifest(store, r.contextId)).map((e) => e.path);
  assert.deepEqual(paths, ['build', 'build/keep.txt', 'logs', 'logs/important.log', 'main.go']);
});

test('the client rejects fifos, naming the path; symlinks pointing outside the context are sent as links', async () => {
  const dir = await makeDir('bad-client', { 'ok.txt': 'ok' });
  execFileSync('mkfifo', [join(dir, 'pipe')]);
  await assert.rejects(walkContext(dir, { cacheDir: false }), /pipe is a fifo.*\.dockerignore/);
  // Ignored special files are fine.
  assert.deepEqual((await walkContext(dir, { cacheDir: false, dockerignore: ['pipe'] })).map((e) => e.path), ['ok.txt']);
  await symlink('../../etc/passwd', join(dir, 'escape'));
  const escape = (await walkContext(dir, { cacheDir: false, dockerignore: ['pipe'] })).find((e) => e.path === 'escape');
  assert.equal(escape?.linkTarget, '../../etc/passwd', 'the link itself, not the host file it would reach');
});

// Sends a hand-made request sequence and returns the gRPC error the server ends the call with.
async function rawSync(msgs: SyncRequest[], afterMissing: (missing: string[]) => SyncRequest[] = () => []): Promise<ServiceError> {
  const call = srv.client.sync();
  for (const m of msgs) call.write(m);
  const missing: string[] = [];
  try {
    for await (const res of call as AsyncIterable<SyncResponse>) {
      if (res.missing) missing.push(...res.missing.digests);
      if (res.missingDone) {
        for (const m of afterMissing(missing)) call.write(m);
        call.end();
      }
    }
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error('expected the server to reject the sync');
}

const D = (c: string) => 'sha256:' + c.repeat(64);
const file = (path: string, extra: Partial<{ mode: number; size: number; digest: string; linkTarget: string }> = {}) =>
  ({ path, mode: 0o100644, size: 1, digest: D('a'), linkTarget: '', modTime: '0', xattrs: [], ...extra });

test('the server rejects bad entries with INVALID_ARGUMENT and a clear message', async () => {
  const cases: [string, SyncRequest['entries'], RegExp][] = [
    ['dotdot', { removed: [], entries: [file('a/../../etc/passwd')] }, /contains "\.\."/],
    ['absolute', { removed: [], entries: [file('/etc/passwd')] }, /"\/etc\/passwd" is an absolute path/],
    ['empty', { removed: [], entries: [file('')] }, /empty path/],
    ['duplicate', { removed: [], entries: [file('x'), file('x')] }, /"x" is listed twice/],
    ['fifo', { removed: [], entries: [file('p', { mode: 0o010644, size: 0, digest: '' })] }, /"p" is a fifo/],
    ['char device', { removed: [], entries: [file('dev/null', { mode: 0o020666, size: 0, digest: '' })] }, /"dev\/null" is a character device/],
    ['bad digest', { removed: [], entries: [file('f', { digest: 'md5:abc' })] }, /invalid digest "md5:abc"/],
    ['nested under file', { removed: [], entries: [file('f'), file('f/g')] }, /"f\/g" is nested under "f"/],
  ];
  for (const [name, entries, re] of cases) {
    const err = await rawSync([{ entries }, { entriesDone: true }]);
    assert.equal(err.code, status.INVALID_ARGUMENT, `${name}: ${err.message}`);
    assert.match(err.details, re, name);
  }
});

test('the server enforces size and file-count limits with RESOURCE_EXHAUSTED', async () => {
  const big = await rawSync([{ entries: { removed: [], entries: [file('huge.iso', { size: 301 * 1024 * 1024 })] } }, { entriesDone: true }]);
  assert.equal(big.code, status.RESOURCE_EXHAUSTED);
  assert.match(big.details, /build context is larger than the limit of 314572800 bytes \(at "huge\.iso"\)/);
  const many = Array.from({ length: 20_001 }, (_, i) => file(`f${i}`));
  const batches: SyncRequest[] = [];
  for (let i = 0; i < many.length; i += 5000) batches.push({ entries: { removed: [], entries: many.slice(i, i + 5000) } });
  const tooMany = await rawSync([...batches, { entriesDone: true }]);
  assert.equal(tooMany.code, status.RESOURCE_EXHAUSTED);
  assert.match(tooMany.details, /more than 20000 entries/);
});

test('the server rejects unrequested chunks and content that does not match its digest', async () => {
  const content = Buffer.from('real content');
  const digest = 'sha256:' + (await import('node:crypto')).createHash('sha256').update(content).digest('hex');
  const unrequested = await rawSync(
    [{ entries: { removed: [], entries: [file('f', { size: content.length, digest })] } }, { entriesDone: true }],
    () => [{ chunk: { digest: D('b'), data: Buffer.from('x'), last: true } }],
  );
  assert.equal(unrequested.code, status.INVALID_ARGUMENT);
  assert.match(unrequested.details, /received content for sha256:b+, which was not requested/);

  const fake = D('c');
  const mismatch = await rawSync(
    [{ entries: { removed: [], entries: [file('f', { size: 5, digest: fake })] } }, { entriesDone: true }],
    (missing) => { assert.deepEqual(missing, [fake]); return [{ chunk: { digest: fake, data: Buffer.from('wrong'), last: true } }, { uploadDone: true }]; },
  );
  assert.equal(mismatch.code, status.INVALID_ARGUMENT);
  assert.match(mismatch.details, /does not match sha256:c+; the file changed during the upload/);
  assert.equal(await store.content.has(fake), false);
});

test('content another tenant uploaded must be sent again: a digest alone proves nothing', async () => {
  const secret = Buffer.from(`another tenant's secret ${process.pid}\n`);
  const digest = 'sha256:' + (await import('node:crypto')).createHash('sha256').update(secret).digest('hex');
  const dir = await makeDir('owner', { 'secret.txt': secret.toString() });
  await syncContext(srv.client, dir, { cacheDir: false });
  assert.equal(await store.content.has(digest), true);

  const other = await startSyncServer(store, 'other');
  try {
    // Named without content: asked for, exactly like a digest nobody has.
    const entries = (d: string) => [{ entries: { removed: [], entries: [file('stolen', { size: secret.length, digest: d })] } }, { entriesDone: true }] as SyncRequest[];
    const exchange = async (msgs: SyncRequest[], reply: (missing: string[]) => SyncRequest[]) => {
      const call = other.client.sync();
      for (const m of msgs) call.write(m);
      const missing: string[] = [];
      try {
        for await (const res of call as AsyncIterable<SyncResponse>) {
          if (res.missing) missing.push(...res.missing.digests);
          if (res.missingDone) { for (const m of reply(missing)) call.write(m); call.end(); }
          if (res.complete) return { missing, contextId: res.complete.contextId };
        }
      } catch (err) { return { missing, error: err as ServiceError }; }
      return { missing };
    };
    const unknown = D('e');
    const named = await exchange(entries(digest), () => [{ uploadDone: true }]);
    const nobodys = await exchange(entries(unknown), () => [{ uploadDone: true }]);
    assert.deepEqual(named.missing, [digest], 'the other tenant\'s digest is reported missing');
    assert.deepEqual(nobodys.missing, [unknown], 'the answer is the same as for a digest nobody has');
    assert.equal(named.contextId, undefined);
    assert.match(named.error?.details ?? '', /requested contents were not sent/);
    assert.equal(named.error?.details.replace(digest, 'D'), nobodys.error?.details.replace(unknown, 'D'), 'the errors are the same');

    // Wrong bytes of the right length under that digest (one chunk: put() would skip a present blob).
    const forged = await exchange(entries(digest), () => [{ chunk: { digest, data: Buffer.alloc(secret.length, 120), last: true } }, { uploadDone: true }]);
    assert.equal(forged.contextId, undefined);
    assert.match(forged.error?.details ?? '', /does not match/);
    assert.equal(await store.tenantHasContent('other', digest), false);

    // Holding the content is proof: the upload completes (stored once), and next time nothing is asked.
    const honest = await syncContext(other.client, dir, { cacheDir: false });
    assert.equal(honest.bytesUploaded, secret.length);
    assert.equal(await store.tenantHasContent('other', digest), true);
    assert.equal((await syncContext(other.client, dir, { cacheDir: false })).bytesUploaded, 0);
  } finally {
    await other.stop();
  }
});

test('a context with 10k small files syncs', async () => {
  const dir = join(tmp, 'many');
  for (let d = 0; d < 100; d++) {
    await mkdir(join(dir, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(join(dir, `d${d}`, `f${f}.txt`), `file ${d}/${f}\n`)));
  }
  const r = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  assert.equal(r.files, 10_000);
  assert.equal((await readManifest(store, r.contextId)).length, 10_100);
  assert.equal(srv.results.at(-1)!.uploaded.length, 10_000);
  const again = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  assert.equal(again.contextId, r.contextId);
  assert.equal(again.bytesUploaded, 0);
});

test('materialize round-trips modes, empty dirs and symlinks; include filters', async () => {
  const dir = await makeDir('modes', { 'bin/run.sh': '#!/bin/sh\necho hi\n', 'secret.txt': 'shh', 'plain.txt': 'plain', 'sub/readonly/x': 'x' });
  await chmod(join(dir, 'bin/run.sh'), 0o755);
  await chmod(join(dir, 'secret.txt'), 0o600);
  await chmod(join(dir, 'sub/readonly'), 0o555);
  await mkdir(join(dir, 'empty'), { mode: 0o700 });
  await chmod(join(dir, 'empty'), 0o700);
  await symlink('bin/run.sh', join(dir, 'link-to-run'));
  await symlink('missing-target', join(dir, 'dangling'));
  const r = await syncContext(srv.client, dir, { cacheDir: false });
  const dest = join(tmp, 'modes-out');
  const res = await materializeContext(store, r.contextId, dest);
  // Node's utimes sets whole microseconds, not the nanoseconds the walk reads (layers keep seconds).
  const strip = (es: Awaited<ReturnType<typeof walkContext>>) => es.map((e) => ({ ...e, modTime: String(BigInt(e.modTime ?? '0') / 1000n) }));
  assert.deepEqual(strip(await walkContext(dest, { cacheDir: false })), strip(await walkContext(dir, { cacheDir: false })));
  assert.equal(await readlink(join(dest, 'link-to-run')), 'bin/run.sh');
  assert.equal((await stat(join(dest, 'secret.txt'))).mode & 0o7777, 0o600);
  assert.equal(res.linked + res.copied, 4);
  await chmod(join(dir, 'sub/readonly'), 0o755);
  await chmod(join(dest, 'sub/readonly'), 0o755);

  const partial = join(tmp, 'modes-partial');
  await materializeContext(store, r.contextId, partial, { include: (p) => p.startsWith('bin') });
  assert.deepEqual(await readdir(partial), ['bin']);
});

test('a 200 MB file streams with bounded memory', async () => {
  const dir = join(tmp, 'big');
  await mkdir(dir);
  const size = 200 * 1024 * 1024;
  await writeFile(join(dir, 'big.bin'), '');
  await truncate(join(dir, 'big.bin'), size);
  await writeFile(join(dir, 'small.txt'), 'next to a big file');
  // Live memory, not RSS: RSS also holds chunk buffers that are garbage but not yet collected,
  // which V8 lets reach ~64 MiB of external memory before it collects (so a busy machine saw
  // 80 MiB). Collected at each sample, what is left is what client and server still hold.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const live = () => { gc(); const m = process.memoryUsage(); return m.heapUsed + m.arrayBuffers; };
  const base = live();
  let peak = base;
  // A full collection per sample costs tens of ms on a busy machine: the next sample waits
  // nine times what this one took, so sampling never takes more than a tenth of the CPU the
  // sync needs (every 20 ms, it took all of it: this test ran 140-170 s in a loaded CI run).
  let timer: NodeJS.Timeout | undefined;
  const sample = () => {
    const started = performance.now();
    peak = Math.max(peak, live());
    timer = setTimeout(sample, Math.max(20, 9 * (performance.now() - started)));
  };
  sample();
  try {
    const r = await syncContext(srv.client, dir, { cacheDir: false });
    assert.equal(r.bytesUploaded, size + 'next to a big file'.length);
    assert.equal(r.bytesTotal, size + 'next to a big file'.length);
  } finally {
    clearTimeout(timer);
  }
  const growth = peak - base;
  // Client and server together hold ~25 MiB in flight at any file size (100-290 MiB measured);
  // holding the file, or an unbounded queue of its chunks, would take 200 MiB and more.
  assert.ok(growth < 64 * 1024 * 1024, `live memory grew by ${(growth / 1048576).toFixed(1)} MiB while streaming 200 MiB`);
});

test('file, directory and symlink mtimes travel with the entries (ns) and materialize; two times for one content share a blob', async () => {
  const dir = await makeDir('mtimes', { 'old.txt': 'same-bytes-mtime', 'sub/new.txt': 'same-bytes-mtime' });
  await symlink('old.txt', join(dir, 'link'));
  const { utimes, lutimes, lstat } = await import('node:fs/promises');
  await utimes(join(dir, 'old.txt'), 1_000_000_000.25, 1_000_000_000.25);
  await utimes(join(dir, 'sub/new.txt'), 1_600_000_000, 1_600_000_000);
  await utimes(join(dir, 'sub'), 1_200_000_000, 1_200_000_000);
  await lutimes(join(dir, 'link'), 1_300_000_000, 1_300_000_000);
  const want = async (p: string) => String((await lstat(join(dir, p), { bigint: true })).mtimeNs);

  const r = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  const manifest = await readManifest(store, r.contextId);
  for (const p of ['old.txt', 'sub/new.txt', 'sub', 'link']) {
    assert.equal(manifest.find((e) => e.path === p)?.modTime, await want(p), p);
  }
  // One content, one blob, whatever the times: the upload sent it once.
  assert.equal(r.bytesUploaded, 'same-bytes-mtime'.length);

  const out = join(tmp, 'mtimes-out');
  await materializeContext(store, r.contextId, out);
  const sec = async (p: string) => Number((await lstat(join(out, p), { bigint: true })).mtimeNs / 1_000_000n);
  assert.equal(await sec('old.txt'), 1_000_000_000_250);
  assert.equal(await sec('sub/new.txt'), 1_600_000_000_000);
  assert.equal(await sec('sub'), 1_200_000_000_000);
  assert.equal(await sec('link'), 1_300_000_000_000);

  // Only the time changed: a new context id (the manifest holds it), nothing uploaded.
  await utimes(join(dir, 'old.txt'), 1_100_000_000, 1_100_000_000);
  const r2 = await syncContext(srv.client, dir, { cacheDir: cacheDir() });
  assert.notEqual(r2.contextId, r.contextId);
  assert.equal(r2.bytesUploaded, 0);
  const out2 = join(tmp, 'mtimes-out2');
  await materializeContext(store, r2.contextId, out2);
  assert.equal(Number((await lstat(join(out2, 'old.txt'), { bigint: true })).mtimeNs / 1_000_000n), 1_100_000_000_000);
  // The first materialization is untouched: no shared inode had its time changed.
  assert.equal(await sec('old.txt'), 1_000_000_000_250);
});
