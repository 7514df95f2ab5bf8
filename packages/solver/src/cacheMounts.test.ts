// RUN cache mounts record their tenant beside the directory (for that tenant's prune), out of
// reach of the step, and a directory made before the records gets one when next mounted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RunMount } from '@buildyard/graph';
import { CACHE_MOUNTS_DIR, cacheMountDir, cacheMountTenant, isCacheMountRecord } from './cacheMounts.js';
import { RunMounts } from './RunMounts.js';

test('a RUN cache mount records its tenant beside its directory, outside what the step mounts; an older directory gets the record when next mounted', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-cachemount-owner-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stateDir = join(root, 'state');
  const scratchDir = join(root, 'scratch');
  mkdirSync(scratchDir, { recursive: true });
  const cache = (id: string): RunMount => ({ type: 'cache', target: `/cache/${id}`, id, sharing: 'shared', uid: 0, gid: 0, mode: 0o755, readonly: false });
  const mount = async (tenant: string, id: string) => {
    const mounts = new RunMounts({
      stateDir, scratchDir, tenant, rootfs: join(root, 'rootfs'), secrets: new Map(), inputs: {},
      viewOf: () => Promise.reject(new Error('no view in this test')), pullImage: () => Promise.reject(new Error('no image in this test')),
    });
    const { mounts: [m] } = await mounts.prepare([cache(id)]);
    await mounts.release();
    assert.ok(m?.type === 'bind');
    return m.source;
  };
  // A directory from before the records: no tenant until its tenant mounts it again.
  const old = cacheMountDir(stateDir, 'alice', 'npm');
  mkdirSync(old, { recursive: true });
  assert.equal(await cacheMountTenant(old), undefined);

  const aliceGo = await mount('alice', 'go');
  assert.equal(aliceGo, cacheMountDir(stateDir, 'alice', 'go'));
  assert.equal(await cacheMountTenant(aliceGo), 'alice');
  assert.deepEqual(readdirSync(aliceGo), [], 'the record is not inside what the step mounts');
  assert.equal(await cacheMountTenant(await mount('bob', 'go')), 'bob', 'the same id of another tenant is another directory, recorded as its');
  assert.equal(await mount('alice', 'npm'), old);
  assert.equal(await cacheMountTenant(old), 'alice');
  // Steps mounting a new cache at once each write its record: none fails, one record stays.
  const together = await Promise.all(Array.from({ length: 8 }, () => mount('carol', 'apt')));
  assert.equal(await cacheMountTenant(together[0]!), 'carol');
  const names = readdirSync(join(stateDir, CACHE_MOUNTS_DIR));
  assert.equal(names.filter((n) => !isCacheMountRecord(n)).length, 4, names.join(' '));
  assert.equal(names.filter(isCacheMountRecord).length, 4, 'one record each, no partial one left');
});
