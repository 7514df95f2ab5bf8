// The attacker's test for the BuildKit endpoint's context sync: a client (buildctl, buildx or
// anything speaking fsutil's DiffCopy) chooses every STAT it sends, hard links included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextStore } from '@buildyard/context';
import { fsutil } from '@buildyard/proto';
import { receiveLocalToStore } from './fileSync.js';
import type { ClientSession } from './SessionManager.js';

const { Packet, Packet_PacketType: T } = fsutil;
type Packet = fsutil.Packet;

/** `mode`: Go's FileMode (a regular file's permission bits by default). */
interface Sent { path: string; linkname?: string; content?: string; declaredSize?: number; mode?: number }

/**
 * The client side of DiffCopy, scripted: every STAT in order, an empty STAT, then the content of
 * each file the receiver asks for (REQ), and FIN once the receiver sends its FIN.
 */
function craftedClient(files: Sent[]): ClientSession {
  const queue: Packet[] = files.map((f) => Packet.fromPartial({
    type: T.PACKET_STAT,
    // Go's FileMode of a regular file: permission bits only.
    stat: { path: f.path, mode: f.mode ?? 0o644, size: f.declaredSize ?? Buffer.byteLength(f.content ?? ''), modTime: '1700000000000000000', linkname: f.linkname ?? '' },
  }));
  queue.push(Packet.fromPartial({ type: T.PACKET_STAT }));
  let wake: (() => void) | undefined;
  let ended = false;
  const push = (p: Packet) => { queue.push(p); wake?.(); };
  const call = {
    async send(p: Packet) {
      if (p.type === T.PACKET_REQ) {
        const content = files[p.ID]!.content ?? '';
        if (content) push(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID, data: Buffer.from(content) }));
        push(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID, data: Buffer.alloc(0) }));
      } else if (p.type === T.PACKET_FIN) {
        push(Packet.fromPartial({ type: T.PACKET_FIN }));
      }
    },
    end() { ended = true; wake?.(); },
    cancel() { ended = true; wake?.(); },
    async *messages() {
      for (;;) {
        const next = queue.shift();
        if (next) { yield next; continue; }
        if (ended) return;
        await new Promise<void>((resolve) => { wake = resolve; });
      }
    },
  };
  return { supports: () => true, call: () => call } as unknown as ClientSession;
}

async function withStore(opts: { maxFiles?: number; maxContextBytes?: number }, fn: (store: ContextStore) => Promise<void>): Promise<void> {
  const tmp = await mkdtemp(join(tmpdir(), 'buildyard-filesync-'));
  try {
    await fn(new ContextStore({ root: join(tmp, 'store'), ...opts }));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

const receive = (store: ContextStore, files: Sent[]) =>
  receiveLocalToStore(craftedClient(files), 'context', {}, store, 'tenant-a', undefined, new AbortController().signal);

test('a hard link is stored as a link to its target, with its target\'s content, under its own clean path', async () => {
  await withStore({}, async (store) => {
    const { entries } = await receive(store, [{ path: 'a', content: 'hello' }, { path: 'b', linkname: 'a' }]);
    assert.deepEqual(entries.map((e) => [e.path, e.size, e.hardlinkTo]), [['a', 5, undefined], ['b', 5, 'a']]);
    assert.equal(entries[1]!.digest, entries[0]!.digest);
    // A sender that names another link: the file's first name.
    const chained = await receive(store, [{ path: 'a', content: 'hello' }, { path: 'b', linkname: 'a' }, { path: 'c', linkname: 'b' }]);
    assert.equal(chained.entries[2]!.hardlinkTo, 'a');
  });
});

test('the attacker: a hard link to a directory, a symlink, itself or a later name is refused', async () => {
  const GO_DIR = 2 ** 31;
  const GO_SYMLINK = 2 ** 27;
  await withStore({}, async (store) => {
    for (const [name, files, refused] of [
      ['a directory', [{ path: 'd', mode: GO_DIR | 0o755 }, { path: 'h', linkname: 'd' }], /hard link "h" points to "d", which was not sent/],
      ['a symlink', [{ path: 's', mode: GO_SYMLINK | 0o777, linkname: '/etc/passwd' }, { path: 't', linkname: 's' }], /hard link "t" points to "s", which was not sent/],
      ['outside', [{ path: 'a', content: 'x' }, { path: 'b', linkname: '../a' }], /hard link "b" points to "\.\.\/a", which was not sent/],
      ['itself', [{ path: 'a', linkname: 'a' }], /hard link "a" points to "a", which was not sent/],
      ['a later name', [{ path: 'a', linkname: 'b' }, { path: 'b', content: 'x' }], /local "context": context entry "a" is a hard link to "b", which comes after it in walk order/],
    ] as [string, Sent[], RegExp][]) {
      await assert.rejects(receive(store, files), refused, name);
    }
  });
});

test('a hard link whose own path leaves the context is refused before anything is stored', async () => {
  await withStore({}, async (store) => {
    for (const path of ['../../../etc/cron.d/x', '/etc/cron.d/x', 'a/../../x', 'a//b', './a']) {
      await assert.rejects(receive(store, [{ path: 'a', content: 'hello' }, { path, linkname: 'a' }]),
        /local "context": context entry .* (contains "\.\."|is an absolute path|is not a clean path)/, path);
    }
  });
});

test('hard links count against the entry limit like every other entry', async () => {
  await withStore({ maxFiles: 3 }, async (store) => {
    const links = Array.from({ length: 10 }, (_, i) => ({ path: `l${i}`, linkname: 'a' }));
    await assert.rejects(receive(store, [{ path: 'a', content: 'x' }, ...links]), /more than 3 entries/);
  });
});

test('a file sent on past the size its STAT declared is cut off at the first byte over: the context limit counted the declared size', async () => {
  await withStore({ maxContextBytes: 1024 * 1024 }, async (store) => {
    await assert.rejects(receive(store, [{ path: 'big', declaredSize: 0, content: 'x'.repeat(3 * 1024 * 1024) }]), /local "context": "big" changed while it was sent; run the build again/);
    // Nothing of it is left in the shared store: no blob, no ingest file.
    let bytes = 0;
    for (const entry of await readdir(store.root, { recursive: true })) {
      const st = await stat(join(store.root, entry));
      if (st.isFile()) bytes += st.size;
    }
    assert.ok(bytes < 1024 * 1024, `${bytes} bytes left in the store`);
  });
});
