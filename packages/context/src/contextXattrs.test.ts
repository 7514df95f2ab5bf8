// Context entries' extended attributes end to end on real files: the client's walk (with the
// snapshot addon's llistxattr, as the CLI loads it), the hash cache, the sync to a real server,
// the delta, the server's filter, and the worker's materialised tree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SyncRequest, SyncResponse } from '@buildyard/proto';
import { readXattrs, setXattrs } from '@buildyard/snapshot';
import { ContextStore, readManifest } from './ContextStore.js';
import { entryXattrs, sameXattrs } from './contextXattrs.js';
import { materializeContext } from './materializeContext.js';
import { syncContext } from './syncContext.js';
import { walkContext } from './walkContext.js';
import { startSyncServer, type TestSyncServer } from './syncServer.test-util.js';

let tmp: string;
let store: ContextStore;
let srv: TestSyncServer;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'buildyard-ctx-xattrs-'));
  store = new ContextStore({ root: join(tmp, 'store') });
  srv = await startSyncServer(store);
});
after(async () => {
  await srv?.stop();
  await rm(tmp, { recursive: true, force: true });
});

/** A v2 file capability: cap_net_bind_service permitted and effective (what `setcap cap_net_bind_service+ep` writes). */
const CAPABILITY = Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');
/** The client's reader, counting its calls. */
function countingReader(): { read: (path: string) => Map<string, Buffer>; calls: string[] } {
  const calls: string[] = [];
  return { calls, read: (path) => { calls.push(path); return readXattrs(path); } };
}

async function makeContext(name: string): Promise<string> {
  const ctx = join(tmp, name);
  await mkdir(join(ctx, 'd'), { recursive: true });
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY . /\n');
  await writeFile(join(ctx, 'tool'), 'binary\n');
  await writeFile(join(ctx, 'd/plain'), 'plain\n');
  await symlink('tool', join(ctx, 'link'));
  setXattrs(join(ctx, 'tool'), [['security.capability', CAPABILITY], ['user.origin', Buffer.from('ctx')], ['trusted.overlay.redirect', Buffer.from('/etc')]]);
  setXattrs(join(ctx, 'd'), [['user.dir', Buffer.from('yes')]]);
  return ctx;
}

test('a context keeps user.* attributes, sorted by name; security.* (a capability too, as BuildKit\'s receiver loses it), trusted.* and ACL names are dropped; what no file system holds is refused', () => {
  assert.deepEqual(entryXattrs('"f"', [
    ['user.b', Buffer.from('2')], ['trusted.overlay.redirect', Buffer.from('/x')], ['security.selinux', Buffer.from('label')],
    ['system.posix_acl_access', Buffer.from([2, 0, 0, 0])], ['security.capability', CAPABILITY], ['user.a', Buffer.from('1')], ['user.', Buffer.from('')],
  ]), [['user.a', b64('1')], ['user.b', b64('2')]]);
  assert.equal(entryXattrs('"f"', [['security.selinux', Buffer.from('x')], ['security.capability', CAPABILITY]]), undefined);
  assert.throws(() => entryXattrs('"f"', [['user.a\0b', Buffer.from('')]]), /^ContextError: context entry "f" has an invalid extended attribute name "user.a\\u0000b"$/);
  assert.throws(() => entryXattrs('"f"', [[`user.${'n'.repeat(251)}`, Buffer.from('')]]), /invalid extended attribute name/);
  assert.throws(() => entryXattrs('"f"', [['user.big', Buffer.alloc(65_537)]]), /^ContextError: context entry "f": extended attribute "user.big" is larger than 65536 bytes$/);
  assert.throws(() => entryXattrs('"f"', [['user.a', Buffer.from('1')], ['user.a', Buffer.from('2')]]), /lists extended attribute "user.a" twice/);
  assert.throws(() => entryXattrs('"f"', Array.from({ length: 65 }, (_, i) => [`user.${i}`, Buffer.from('')] as const)), /more than 64 extended attributes/);
  assert.ok(sameXattrs(undefined, []) && !sameXattrs([['user.a', b64('1')]], [['user.a', b64('2')]]));
});

test('the walk reads each entry\'s own attributes (a symlink\'s, not its target\'s); an unchanged file\'s come from its hash cache row, a changed attribute is read again', async () => {
  const ctx = await makeContext('walk');
  const cacheDir = join(tmp, 'walk-cache');
  const first = countingReader();
  const entries = await walkContext(ctx, { cacheDir, readXattrs: first.read });
  const byPath = new Map(entries.map((e) => [e.path, e]));
  assert.deepEqual(byPath.get('tool')!.xattrs, [['user.origin', b64('ctx')]]);
  assert.deepEqual(byPath.get('d')!.xattrs, [['user.dir', b64('yes')]]);
  assert.equal(byPath.get('link')!.xattrs, undefined);
  assert.equal(byPath.get('d/plain')!.xattrs, undefined);
  // Without a reader there are none (and the entries are those of a client that sends none).
  assert.ok((await walkContext(ctx, { cacheDir: false })).every((e) => e.xattrs === undefined));

  // The hash cache keeps a file's attributes only once its times are safely old (racy rows are
  // not kept): a clock two minutes ahead makes every row trusted.
  const later = () => BigInt(Date.now() + 120_000) * 1_000_000n;
  await walkContext(ctx, { cacheDir, readXattrs: countingReader().read, now: later });
  const cached = countingReader();
  const again = await walkContext(ctx, { cacheDir, readXattrs: cached.read, now: later });
  assert.deepEqual(again, entries);
  assert.deepEqual(cached.calls.map((p) => p.slice(ctx.length + 1)).sort(), ['d', 'link'], 'files are not asked again; directories and symlinks are');

  setXattrs(join(ctx, 'd/plain'), [['user.new', Buffer.from('1')]]);
  const changed = countingReader();
  const after = await walkContext(ctx, { cacheDir, readXattrs: changed.read, now: later });
  assert.deepEqual(after.find((e) => e.path === 'd/plain')!.xattrs, [['user.new', b64('1')]]);
  assert.ok(changed.calls.includes(join(ctx, 'd/plain')), 'the attribute moved ctime, so the row missed');
});

test('synced attributes are in the manifest (and its id), a changed attribute alone is a one-entry delta, and the worker\'s tree carries them on inodes of its own', async () => {
  const ctx = await makeContext('sync');
  await utimes(join(ctx, 'tool'), 1e9, 1e9);
  const cacheDir = join(tmp, 'sync-cache');
  const plain = await syncContext(srv.client, ctx, { cacheDir: false });
  const first = await syncContext(srv.client, ctx, { cacheDir, readXattrs });
  assert.notEqual(first.contextId, plain.contextId, 'the attributes are part of the context');
  const manifest = await readManifest(store, first.contextId);
  assert.deepEqual(manifest.find((e) => e.path === 'tool')!.xattrs, [['user.origin', b64('ctx')]]);
  assert.equal(JSON.stringify(await readManifest(store, plain.contextId)).includes('xattrs'), false, 'a context without attributes is encoded as before');

  // A blob with the entry's mode and time would be hardlinked (the store's blob has the time it
  // was written; give it the file's).
  await utimes(store.content.path(manifest.find((e) => e.path === 'tool')!.digest), 1e9, 1e9);
  const tree = join(tmp, 'trees', first.contextId.slice('sha256:'.length));
  await materializeContext(store, first.contextId, tree, { reuseSiblings: true, setXattrs });
  assert.deepEqual([...readXattrs(join(tree, 'tool'))], [['user.origin', Buffer.from('ctx')]]);
  assert.deepEqual([...readXattrs(join(tree, 'd'))], [['user.dir', Buffer.from('yes')]]);
  const blob = store.content.path(manifest.find((e) => e.path === 'tool')!.digest);
  assert.notEqual((await stat(join(tree, 'tool'))).ino, (await stat(blob)).ino, 'never the store blob\'s inode: its attributes would be every user\'s');
  assert.equal(readXattrs(blob).size, 0);

  // Only an attribute changes: one entry goes, and the next tree starts from this one.
  setXattrs(join(ctx, 'tool'), [['user.origin', Buffer.from('changed')]]);
  const second = await syncContext(srv.client, ctx, { cacheDir, readXattrs });
  assert.notEqual(second.contextId, first.contextId);
  const { delta, entriesReceived, bytesUploaded } = srv.results.at(-1)!;
  assert.deepEqual({ delta, entriesReceived, bytesUploaded }, { delta: true, entriesReceived: 1, bytesUploaded: 0 }, 'the delta is the one entry, and no content');
  const next = join(tmp, 'trees', second.contextId.slice('sha256:'.length));
  const result = await materializeContext(store, second.contextId, next, { reuseSiblings: true, setXattrs });
  assert.equal(result.reusedFrom, first.contextId);
  assert.deepEqual(readXattrs(join(next, 'tool')).get('user.origin'), Buffer.from('changed'));
  assert.deepEqual(readXattrs(join(tree, 'tool')).get('user.origin'), Buffer.from('ctx'), 'the previous tree is as it was');
});

test('the server keeps only user.* attributes of what a client sends, and refuses malformed attributes', async () => {
  const content = Buffer.from('x\n');
  const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
  const entry = { path: 'f', mode: 0o100644, size: content.length, digest, linkTarget: '', modTime: '0' };
  const xattr = (name: string, value: string) => ({ name, value: Buffer.from(value) });
  const sync = async (xattrs: { name: string; value: Buffer }[]): Promise<{ contextId?: string; error?: string }> => {
    const call = srv.client.sync();
    const messages: SyncRequest[] = [{ entries: { entries: [{ ...entry, xattrs }], removed: [] } }, { entriesDone: true }];
    for (const m of messages) call.write(m);
    let asked = false;
    try {
      for await (const res of call as AsyncIterable<SyncResponse>) {
        if (res.missing?.digests.includes(digest)) asked = true;
        if (res.missingDone) {
          if (asked) call.write({ blobs: { blobs: [{ digest, data: content, last: true }] } });
          call.write({ uploadDone: true });
          call.end();
        }
        if (res.complete) return { contextId: res.complete.contextId };
      }
    } catch (err) {
      return { error: (err as { details?: string }).details };
    }
    return {};
  };
  const kept = await sync([xattr('trusted.overlay.redirect', '/etc'), xattr('security.selinux', 'system_u:object_r:etc_t:s0'), { name: 'security.capability', value: CAPABILITY }, xattr('user.a', '1')]);
  assert.ok(kept.contextId, kept.error);
  assert.deepEqual((await readManifest(store, kept.contextId))[0].xattrs, [['user.a', b64('1')]]);
  const dropped = await sync([xattr('trusted.overlay.opaque', 'y')]);
  assert.equal((await readManifest(store, dropped.contextId!))[0].xattrs, undefined);
  const tree = join(tmp, 'attacker-tree');
  await materializeContext(store, kept.contextId, tree, { setXattrs });
  assert.deepEqual([...readXattrs(join(tree, 'f'))], [['user.a', Buffer.from('1')]]);
  assert.match((await sync([xattr('user.big', 'x'.repeat(65_537))])).error ?? '', /^context entry "f": extended attribute "user.big" is larger than 65536 bytes$/);
});
