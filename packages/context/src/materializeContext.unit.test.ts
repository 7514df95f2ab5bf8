// A stored manifest is checked again before it is written out: entries a store holds without
// the upload's validation (a tampered store, or a writer that skipped validateEntry) never
// write or remove anything outside the destination.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { S_IFDIR, S_IFREG, type ContextEntry } from './ContextEntry.js';
import { ContextError } from './ContextError.js';
import { ContextStore } from './ContextStore.js';
import { materializeContext } from './materializeContext.js';

const sha = (data: string) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const dir = (path: string): ContextEntry => ({ path, mode: S_IFDIR | 0o755, size: 0, digest: '', linkTarget: '' });
const file = (path: string, data: string): ContextEntry => ({ path, mode: S_IFREG | 0o644, size: data.length, digest: sha(data), linkTarget: '' });

describe('materializeContext on a stored manifest', () => {
  for (const [name, bad] of [
    ['a ".." directory', dir('../escaped')],
    ['a ".." file', file('../escaped', 'x')],
    ['a ".." deeper down', dir('a/../../escaped')],
    ['an absolute path', file('/abs', 'x')],
    ['an empty component', file('a//b', 'x')],
  ] as const) {
    it(`refuses ${name} and writes nothing`, async () => {
      const base = mkdtempSync(join(tmpdir(), 'buildyard-materialize-'));
      try {
        const store = new ContextStore({ root: join(base, 'store') });
        await store.putBlobs([{ digest: sha('x'), data: Buffer.from('x') }]);
        // Put straight into the store: putManifest does not validate (its callers do).
        const id = await store.putManifest([dir('a'), bad], 'alice');
        const dest = join(base, 'contexts', 'x', 'tree');
        mkdirSync(dest, { recursive: true });
        const pattern = new RegExp(`^context ${id}: the stored manifest is invalid: context entry ${JSON.stringify(bad.path).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`);
        const refused = (err: Error) => err instanceof ContextError && pattern.test(err.message);
        await assert.rejects(materializeContext(store, id, dest), refused);
        // Read back from disk too (another process's store on the same root: no in-memory copy).
        await assert.rejects(materializeContext(new ContextStore({ root: join(base, 'store') }), id, dest), refused);
        assert.equal(existsSync(join(base, 'contexts', 'x', 'escaped')), false);
        assert.equal(existsSync(join(base, 'contexts', 'escaped')), false);
        assert.equal(existsSync('/abs'), false);
        assert.deepEqual(readdirSync(dest), [], 'nothing was written into dest either');
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    });
  }

  it('never removes outside dest through a sibling context\'s manifest', async () => {
    const base = mkdtempSync(join(tmpdir(), 'buildyard-materialize-'));
    try {
      const store = new ContextStore({ root: join(base, 'store') });
      await store.putBlobs([{ digest: sha('a'), data: Buffer.from('a') }, { digest: sha('b'), data: Buffer.from('b') }]);
      const contexts = join(base, 'contexts');
      // A sibling tree whose stored manifest lists "../victim": reusing it would remove that
      // path from the new tree, i.e. contexts/victim.
      const sibling = await store.putManifest([file('a.txt', 'a'), dir('../victim')], 'alice');
      mkdirSync(join(contexts, sibling.slice('sha256:'.length)), { recursive: true });
      writeFileSync(join(contexts, sibling.slice('sha256:'.length), 'a.txt'), 'a');
      mkdirSync(join(contexts, 'victim'));
      writeFileSync(join(contexts, 'victim', 'keep'), 'keep');
      const id = await store.putManifest([file('a.txt', 'a')], 'alice');
      const dest = join(contexts, id.slice('sha256:'.length));
      const result = await materializeContext(store, id, dest, { reuseSiblings: true });
      assert.equal(existsSync(join(contexts, 'victim', 'keep')), true, 'a path outside dest was removed');
      assert.equal(result.reusedFrom, undefined, 'the invalid sibling is not reused');
      assert.deepEqual(readdirSync(dest), ['a.txt']);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('still writes a valid manifest', async () => {
    const base = mkdtempSync(join(tmpdir(), 'buildyard-materialize-'));
    try {
      const store = new ContextStore({ root: join(base, 'store') });
      await store.putBlobs([{ digest: sha('a'), data: Buffer.from('a') }]);
      const id = await store.putManifest([dir('d'), file('d/a.txt', 'a'), file('..a', 'a')], 'alice');
      const dest = join(base, 'out');
      await materializeContext(store, id, dest);
      assert.equal(readFileSync(join(dest, 'd', 'a.txt'), 'utf8'), 'a');
      assert.equal(readFileSync(join(dest, '..a'), 'utf8'), 'a');
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
