// The worker's local entry point, as a user runs it: builds a context into an OCI layout.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appCommand, startRegistry, seedBusybox } from '@buildyard/testkit';

test('buildyard-worker run-local writes an OCI layout and prints its digest', async () => {
  const registry = await startRegistry();
  const work = mkdtempSync(join(tmpdir(), 'buildyard-run-local-'));
  after(async () => { await registry.stop(); rmSync(work, { recursive: true, force: true }); });
  const base = (await seedBusybox(registry)).reference;
  const context = mkdtempSync(join(work, 'context-'));
  writeFileSync(join(context, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nRUN echo local > /where\n');
  const layout = join(work, 'layout');
  const run = spawnSync(process.execPath, appCommand('worker', 'run-local', context, '--build-arg', `BASE=${base}`, '--platform', 'linux/amd64', '-o', layout, '-t', 'v1', '--state-dir', join(work, 'state')), { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  assert.match(run.stderr, /RUN echo local/);
  assert.equal(execFileSync('umoci', ['ls', '--layout', layout], { encoding: 'utf8' }).trim(), 'v1');

  const bad = spawnSync(process.execPath, appCommand('worker', 'run-local', context, '--platform', 'linux/s390x', '-o', layout, '--build-arg', `BASE=${base}`, '--state-dir', join(work, 'state')), { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /no worker can build linux\/s390x/);
});
