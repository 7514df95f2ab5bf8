import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { configReference } from './loadConfig.js';
import { OPTIONS } from './options.js';

const repo = resolve(import.meta.dirname, '../../..');
const script = join(repo, 'scripts/gen-config-docs.mjs');
const runScript = (...args: string[]) => spawnSync(process.execPath, ['--conditions=source', '--import', 'tsx', script, ...args], { cwd: repo, encoding: 'utf8' });

test('docs/configuration.md is the generated reference (run `npm run docs:config` when this fails)', () => {
  const committed = readFileSync(join(repo, 'docs/configuration.md'), 'utf8');
  assert.ok(committed === configReference(), 'docs/configuration.md is stale: run `npm run docs:config` and commit it');
  for (const o of OPTIONS) assert.ok(committed.includes(`\`${o.env}\``), `${o.env} missing from docs/configuration.md`);
});

test('gen-config-docs writes the reference and --check fails on a stale file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-docs-'));
  try {
    const out = join(dir, 'configuration.md');
    writeFileSync(out, '# Configuration reference\n\nold text\n');
    const stale = runScript('--check', '--out', out);
    assert.equal(stale.status, 1, stale.stderr);
    assert.match(stale.stderr, /is stale: run `npm run docs:config`/);
    const write = runScript('--out', out);
    assert.equal(write.status, 0, write.stderr);
    assert.equal(readFileSync(out, 'utf8'), configReference());
    assert.equal(runScript('--check', '--out', out).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
