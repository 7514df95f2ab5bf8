#!/usr/bin/env node
// Runs test files through node:test with tsx, resolving workspace packages to their TypeScript
// sources (the "source" export condition), so tests need no build of their dependencies.
//
//   node scripts/run-tests.mjs              every *.test.ts in proto/, packages/, apps/ and test/e2e/
//   node scripts/run-tests.mjs DIR|FILE...  the tests under those directories, or those files
//   node scripts/run-tests.mjs --unit       only tests that need no system services (*.unit.test.ts)
//   node scripts/run-tests.mjs FILE --test-name-pattern NAME
//                                           node's own --test-* flags (name/skip patterns, reporter,
//                                           timeout, ...) pass through, as `--flag value` or `--flag=value`
//
// Output is node's TAP reporter when not on a TTY, which ends with `# pass N` / `# fail N`.
// Every test file runs under scripts/test-guard.mjs: a file that stalls (no test starting or
// ending for BUILDYARD_TEST_STALL_MS) or does not exit after its tests (BUILDYARD_TEST_EXIT_MS)
// is stopped and reported failed, so a hang cannot keep the run from reaching its summary.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../..');
// node --test flags that take a value; written `--flag value`, the value is not a test root.
const VALUE_FLAGS = new Set(['--test-name-pattern', '--test-skip-pattern', '--test-reporter', '--test-reporter-destination', '--test-concurrency', '--test-timeout', '--test-shard']);
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const roots = [];
const nodeTestFlags = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--unit') continue;
  if (a.startsWith('--test-')) {
    nodeTestFlags.push(a);
    if (VALUE_FLAGS.has(a) && i + 1 < args.length) nodeTestFlags.push(args[++i]);
  } else if (a.startsWith('--')) {
    console.error(`run-tests: unknown option ${a}; use --unit, node's --test-* flags, or test files and directories`);
    process.exit(2);
  } else {
    roots.push(a);
  }
}
const searchRoots = roots.length > 0 ? roots.map((r) => resolve(r)) : ['proto', 'packages', 'apps', 'test/e2e', 'test/bench', 'test/conformance'].map((r) => join(repoRoot, r));

function findTests(dir, found) {
  if (dir.endsWith('.test.ts')) { found.push(dir); return; }
  let names;
  try { names = readdirSync(dir); } catch { return; }
  for (const name of names.sort()) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, found);
    else if (name.endsWith('.test.ts') && (!unitOnly || name.endsWith('.unit.test.ts'))) found.push(path);
  }
}

const files = [];
for (const root of searchRoots) findTests(root, files);
if (files.length === 0) {
  console.log('no test files found under', searchRoots.map((r) => relative(repoRoot, r) || '.').join(', '));
  console.log('0 passed, 0 failed');
  process.exit(0);
}
const concurrency = process.env.BUILDYARD_TEST_CONCURRENCY ?? '2';
const child = spawn(process.execPath, [
  '--conditions=source', '--import', 'tsx', '--import', pathToFileURL(join(repoRoot, 'scripts', 'test-guard.mjs')).href, '--test', `--test-concurrency=${concurrency}`,
  ...(process.env.BUILDYARD_TEST_REPORTER ? [`--test-reporter=${process.env.BUILDYARD_TEST_REPORTER}`] : []),
  ...nodeTestFlags,
  ...files.map((f) => relative(process.cwd(), f)),
], { stdio: 'inherit' });
// Forward interrupts so test files run their cleanup (testkit stops services on SIGINT/SIGTERM).
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
