// Every scheduler script touches only keys its caller declared (prelude.lua): the fixed keys, the
// ones it is given by label and, by position, those of w_view and w_wake. A key name built inside
// a script from the prefix would be undeclared again; these checks fail when one comes back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fixedScriptKeys, labelKey, schedulerKeys } from './keys.js';

const LUA_DIR = new URL('../lua/', import.meta.url);
const lua = (file: string) => readFileSync(new URL(file, LUA_DIR), 'utf8').replace(/--.*$/gm, '');
const files = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua'));

test('the scripts are all checked', () => {
  for (const f of ['prelude.lua', 'workers_prelude.lua', 'submit.lua', 'claim.lua', 'mark_queued.lua', 'start.lua', 'complete.lua', 'fail.lua',
    'release.lua', 'abort.lua', 'recover.lua', 'w_register.lua', 'w_heartbeat.lua', 'w_live.lua', 'w_dead.lua', 'w_drain.lua', 'w_remove.lua',
    'w_view.lua', 'w_wake.lua', 'watch.lua']) assert.ok(files.includes(f), `${f} is under lua/`);
});

test('no script builds a key name from the prefix (pub/sub channels aside)', () => {
  for (const file of files) {
    const text = lua(file);
    // P is the prefix (prelude.lua); its one use is a worker's wake channel, not a key.
    const uses = [...text.matchAll(/\bP\b(\s*\.\.\s*'[^']*')?/g)].map((m) => m[0]);
    const allowed = file === 'prelude.lua' ? ['P'] : [];
    assert.deepEqual(uses.filter((u) => !/^P\s*\.\.\s*':wake:'$/.test(u)), allowed, `${file} uses the key prefix for something other than a wake channel`);
    // Nor from another key's name (e.g. KEYS[8]..':followers').
    assert.deepEqual(text.match(/(KEYS\[[^\]]+\]|\b[A-Z]{2,}\b|\bsk|\bbk|\bwk|\brk)\s*\.\.\s*'[:]/g) ?? [], [], `${file} derives a key name from another key`);
  }
});

test('every key a script asks for by label names a scheduler key', () => {
  const k = schedulerKeys('p');
  const kinds = new Set<string>();
  for (const file of files) for (const m of lua(file).matchAll(/\b(?:key|must)\('([a-z]+):'/g)) kinds.add(m[1]);
  // setPlatformLiveFrom's must(cls..':'..p) with cls pn or pe
  for (const kind of ['pn', 'pe']) kinds.add(kind);
  assert.ok(kinds.has('s') && kinds.has('tr') && kinds.has('w'), `labels found: ${[...kinds].join(' ')}`);
  for (const kind of kinds) {
    const name = labelKey(k, `${kind}:x${kind === 'job' ? ':1' : ''}`);
    assert.ok(name.startsWith('{p}:'), `label ${kind}: names ${name}, outside the scheduler's hash tag`);
  }
  assert.equal(labelKey(k, 's:b|linux/amd64|s1'), k.stage('b|linux/amd64|s1'));
  assert.equal(labelKey(k, 'job:stages-w-a:j1'), `${k.bullQueue('stages-w-a')}:j1`);
  assert.throws(() => labelKey(k, 'nope:x'), /names no scheduler key/);
});

test('the fixed keys StageStore and WorkerRegistry pass are the ones prelude.lua names, in its order', () => {
  const m = /local ([A-Z, ]+) =\s*(KEYS\[1\](?:, KEYS\[\d+\])*)\n/.exec(lua('prelude.lua'));
  assert.ok(m, 'prelude.lua declares the fixed keys');
  const names = m[1].split(', ');
  assert.deepEqual(m[2].split(', '), names.map((_, i) => `KEYS[${i + 1}]`));
  assert.match(lua('prelude.lua'), new RegExp(`local NFIXED = ${names.length}\\n`));
  const suffix: Record<string, string> = {
    CONFIG: ':config', TENANTS: ':tenants', HELD: ':tenants:held', SEQ: ':seq', BEATS: ':workers:beats', DRAINING: ':workers:draining',
    ACTIVE: ':tenants:active', CLAIMED: ':claimed', INFLIGHT: ':inflight', FOLLOWERS: ':inflight:followers',
  };
  const keys = fixedScriptKeys(schedulerKeys('p'));
  assert.equal(keys.length, names.length);
  names.forEach((name, i) => assert.equal(keys[i], `{p}${suffix[name]}`, `KEYS[${i + 1}] is ${name}`));
});
