// The scripts whose keys are all known to their caller touch only what they declare in KEYS
// (see prelude.lua): a key name built inside one of them would be undeclared again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fixedScriptKeys, schedulerKeys } from './keys.js';

const lua = (file: string) => readFileSync(new URL(`../lua/${file}`, import.meta.url), 'utf8').replace(/^\s*--.*$/gm, '');
// prelude.lua's helpers that name keys from the prefix (makeReady only when not given its keys).
const NAMING_HELPERS = ['skey', 'bkey', 'emit', 'stageFields', 'release', 'workerDone', 'resolveDone', 'takeFollowers', 'requeueFollowers',
  'abortBuild', 'expireBuild', 'setPlatformLive', 'setPlatformLiveFrom', 'forgetIdle', 'platformsOf'];

test('fully declared scripts name no key themselves', () => {
  for (const file of ['submit.lua', 'mark_queued.lua', 'w_dead.lua', 'w_wake.lua', 'w_view.lua']) {
    const text = lua(file);
    // Wake channels are pub/sub channels, not keys.
    assert.deepEqual(text.match(/P\s*\.\.\s*'[^']*'/g)?.filter((m) => !m.includes(':wake:')) ?? [], [], `${file} builds key names from the prefix`);
    for (const helper of NAMING_HELPERS) assert.ok(!new RegExp(`\\b${helper}\\(`).test(text), `${file} calls ${helper}, which names keys`);
    for (const call of text.match(/\bmakeReady\([^)]*\)/g) ?? []) assert.equal(call.split(',').length, 3, `${file}: ${call} is given its keys`);
  }
});

test('the fixed keys StageStore and WorkerRegistry pass are the ones prelude.lua names, in its order', () => {
  const m = /local ([A-Z, ]+) = (KEYS\[1\](?:, KEYS\[\d\])*)\n/.exec(lua('prelude.lua'));
  assert.ok(m, 'prelude.lua declares the fixed keys');
  const names = m[1].split(', ');
  assert.deepEqual(m[2].split(', '), names.map((_, i) => `KEYS[${i + 1}]`));
  const suffix: Record<string, string> = { CONFIG: ':config', TENANTS: ':tenants', HELD: ':tenants:held', SEQ: ':seq', BEATS: ':workers:beats', DRAINING: ':workers:draining' };
  const keys = fixedScriptKeys(schedulerKeys('p'));
  assert.equal(keys.length, names.length);
  names.forEach((name, i) => assert.equal(keys[i], `{p}${suffix[name]}`, `KEYS[${i + 1}] is ${name}`));
});
