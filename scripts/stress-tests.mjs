#!/usr/bin/env node
// Runs chosen test files N times while a CPU hog spins on every core, and counts each test's
// passes and failures: a test that waits on elapsed time instead of an event fails here long
// before it fails on a slow CI machine.
//
//   npm run test:stress -- FILE|DIR... [--runs N] [--hogs N] [--test-name-pattern NAME]
//
//   --runs N   how many times the files run (default 5), one run after the other
//   --hogs N   busy-looping processes beside the tests (default: one per core; 0 for none)
//   --test-*   node's test flags, passed through scripts/run-tests.mjs
//
// Each run's TAP output goes to test-artifacts/stress/<time>/run-<i>.tap, for the failures'
// details. Prints one line per run, a table of pass/fail counts per test, then
// `N passed, N failed` (test executions); exits 1 when any failed.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../..');
// Under `npm run`, the cwd is the repo root; paths are meant relative to where the user typed.
const userCwd = process.env.INIT_CWD ?? process.cwd();

function usage(message) {
  console.error(`test:stress: ${message}; usage: npm run test:stress -- FILE|DIR... [--runs N] [--hogs N] [--test-name-pattern NAME]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let runs = 5;
let hogs = availableParallelism();
const files = [];
const passThrough = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  const [flag, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
  const value = () => inline ?? args[++i];
  if (flag === '--runs' || flag === '--hogs') {
    const v = value();
    const n = Number(v);
    if (!Number.isInteger(n) || n < (flag === '--runs' ? 1 : 0)) usage(`${flag} "${v}" is not a whole number${flag === '--runs' ? ' >= 1' : ' >= 0'}`);
    if (flag === '--runs') runs = n; else hogs = n;
  } else if (flag.startsWith('--test-')) {
    passThrough.push(a);
    if (inline === undefined && i + 1 < args.length && !args[i + 1].startsWith('--')) passThrough.push(args[++i]);
  } else if (a.startsWith('--')) {
    usage(`unknown option ${a}`);
  } else {
    files.push(resolve(userCwd, a));
  }
}
if (files.length === 0) usage('name at least one test file or directory');

// Each hog spins, and exits by itself once this script is gone (even after a SIGKILL of it).
const HOG = `const parent = process.ppid; for (;;) { for (let i = 0; i < 5e7; i++); try { process.kill(parent, 0); } catch { process.exit(0); } }`;
const hogProcesses = Array.from({ length: hogs }, () => spawn(process.execPath, ['-e', HOG], { stdio: 'ignore' }));
const stopHogs = () => { for (const h of hogProcesses) if (h.exitCode === null && h.signalCode === null) h.kill('SIGKILL'); };
let current;
process.on('exit', stopHogs);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    current?.kill(signal);
    stopHogs();
    process.exit(130);
  });
}

const logDir = join(repoRoot, 'test-artifacts', 'stress', new Date().toISOString().replace(/[:.]/g, '-'));
mkdirSync(logDir, { recursive: true });
console.log(`test:stress: ${runs} run(s) of ${files.map((f) => relative(repoRoot, f)).join(', ')} beside ${hogs} CPU hog(s); TAP logs in ${relative(repoRoot, logDir)}`);

/** One run of the files; resolves to its top-level test results. */
function runOnce(i) {
  const tapPath = join(logDir, `run-${i}.tap`);
  const log = createWriteStream(tapPath);
  const env = { ...process.env };
  delete env.BUILDYARD_TEST_REPORTER; // this script chooses the reporters
  const child = spawn(process.execPath, [
    join(repoRoot, 'scripts', 'run-tests.mjs'), ...files,
    `--test-reporter=${join(repoRoot, 'scripts', 'stress-reporter.mjs')}`, '--test-reporter-destination=stdout',
    '--test-reporter=tap', `--test-reporter-destination=${tapPath}`,
    ...passThrough,
  ], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  current = child;
  child.stderr.pipe(log);
  const results = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    try { results.push(JSON.parse(line)); } catch { log.write(`${line}\n`); }
  });
  return new Promise((done) => {
    child.on('close', (code, signal) => {
      log.end();
      // A run that failed without reporting a failed test (a crash, a bad flag) still counts.
      if (code !== 0 && !results.some((r) => r.outcome === 'fail')) {
        results.push({ file: '', name: `(the test runner exited ${code ?? signal} without a failed test; see run-${i}.tap)`, outcome: 'fail', message: '' });
      }
      done(results);
    });
  });
}

const counts = new Map();
let passed = 0;
let failed = 0;
for (let i = 1; i <= runs; i++) {
  const started = Date.now();
  const results = await runOnce(i);
  const failures = [];
  for (const r of results) {
    const key = `${r.file ? `${relative(repoRoot, r.file)} › ` : ''}${r.name}`;
    const c = counts.get(key) ?? { pass: 0, fail: 0, skip: 0, messages: new Set() };
    counts.set(key, c);
    c[r.outcome]++;
    if (r.outcome === 'pass') passed++;
    if (r.outcome === 'fail') { failed++; failures.push(key); if (r.message) c.messages.add(r.message); }
  }
  const ran = results.filter((r) => r.outcome !== 'skip');
  console.log(`run ${i}/${runs}: ${ran.length - failures.length} passed, ${failures.length} failed in ${((Date.now() - started) / 1000).toFixed(0)} s${failures.length ? ` — ${failures.join('; ')}` : ''}`);
}

console.log('\n  pass  fail  skip  test');
for (const [key, c] of [...counts].sort(([a], [b]) => a.localeCompare(b))) {
  console.log(`${String(c.pass).padStart(6)}${String(c.fail).padStart(6)}${String(c.skip).padStart(6)}  ${key}`);
  for (const m of c.messages) console.log(`                    ${m}`);
}
console.log(`\n${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
// The hogs' handles keep the event loop alive, so 'exit' would never come by itself.
stopHogs();
