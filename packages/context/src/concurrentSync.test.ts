// Concurrent uploads into one tenant against a real store and a real gRPC server. A flake in
// the conformance suite ("context sync failed: ENOENT … tenants/default/content/2d/…") came
// from two grants in one upload sharing a fan-out directory: the second opened its grant file
// while the first was still creating that directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextStore } from './ContextStore.js';
import { syncContext } from './syncContext.js';
import { materializeContext } from './materializeContext.js';
import { startSyncServer } from './syncServer.test-util.js';

let tmp: string;
before(async () => { tmp = await mkdtemp(join(tmpdir(), 'buildyard-context-race-')); });
after(async () => { await rm(tmp, { recursive: true, force: true }); });

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

/**
 * `n` distinct file contents whose digests all start with `prefix`, so their grants share one
 * fan-out directory whatever the hash happens to be (found by search: about 256 tries each).
 */
function contentsWithPrefix(prefix: string, n: number, tag: string): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n; i++) {
    const s = `${tag} ${i}\n`;
    if (sha(s).startsWith(`sha256:${prefix}`)) out.push(s);
  }
  return out;
}

test('one upload granting many contents in one fan-out directory of a new tenant', async () => {
  const contents = contentsWithPrefix('2d', 48, 'grant');
  const digests = contents.map(sha);
  // Every round is a tenant whose grant directories do not exist yet: the state in which the
  // directory creation and the grant writes used to race.
  for (let round = 0; round < 20; round++) {
    const store = new ContextStore({ root: join(tmp, `grants-${round}`) });
    for (const c of contents) await store.content.put(Buffer.from(c), sha(c));
    await store.grantContent(`tenant-${round}`, digests);
    const held = await Promise.all(digests.map((d) => store.tenantHasContent(`tenant-${round}`, d)));
    assert.deepEqual(held, digests.map(() => true), `round ${round}`);
  }
});

test('concurrent syncs of overlapping contexts into one new tenant all succeed and materialise', async () => {
  const store = new ContextStore({ root: join(tmp, 'syncs') });
  const srv = await startSyncServer(store, 'default');
  try {
    // Shared files (same digests in every context, many under one grant directory) plus a few
    // files of each context's own.
    const shared = contentsWithPrefix('2d', 32, 'shared');
    const dirs: string[] = [];
    for (let c = 0; c < 12; c++) {
      const dir = join(tmp, `ctx-${c}`);
      await mkdir(join(dir, 'sub'), { recursive: true });
      await Promise.all(shared.map((s, i) => writeFile(join(dir, i % 2 ? `sub/s${i}` : `s${i}`), s)));
      await Promise.all(contentsWithPrefix('2d', 4, `own ${c}`).map((s, i) => writeFile(join(dir, `own${i}`), s)));
      dirs.push(dir);
    }
    const results = await Promise.all(dirs.map((d) => syncContext(srv.client, d, { cacheDir: false })));
    assert.deepEqual(srv.errors.map((e) => e.message), []);
    assert.equal(new Set(results.map((r) => r.contextId)).size, dirs.length);
    for (const d of shared.map(sha)) assert.equal(await store.tenantHasContent('default', d), true);

    // Every context is usable: all its files are in the store with the right bytes.
    for (const [c, r] of results.entries()) {
      const out = join(tmp, `out-${c}`);
      await materializeContext(store, r.contextId, out, { copy: true });
      assert.equal(await readFile(join(out, 'sub/s1'), 'utf8'), shared[1]);
      assert.equal(await readFile(join(out, 'own0'), 'utf8'), contentsWithPrefix('2d', 1, `own ${c}`)[0]);
    }

    // A second round has nothing left to send: every grant was recorded.
    const again = await Promise.all(dirs.map((d) => syncContext(srv.client, d, { cacheDir: false })));
    assert.deepEqual(again.map((r) => r.bytesUploaded), dirs.map(() => 0));
  } finally {
    await srv.stop();
  }
});
