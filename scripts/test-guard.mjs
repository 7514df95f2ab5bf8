// Loaded into every test file's process by scripts/run-tests.mjs (`--import`): turns a hang into
// a reported failure of that file, so a run always ends with node's summary.
//
// node:test reports files in order and waits for each file's process to exit, so one file that
// never exits (a test that never settles, a teardown awaiting something that cannot happen, or a
// server, socket or child still open after the last test) stalls the whole run without a word.
// Here every test start and end, and the start of the file's teardown, arms a deadline:
//   - no test started or finished for BUILDYARD_TEST_STALL_MS (default 10 min: above the longest
//     per-test timeout, so a slow test fails by its own timeout with its own name first), or
//   - the file's after() hooks and exit not done BUILDYARD_TEST_EXIT_MS (default 2 min) after
//     its last test.
// When one passes, a line on stderr names the file and what it was waiting for (and what still
// holds the event loop), and the file gets SIGTERM (testkit stops its services on it, then exits
// 130), then SIGKILL 30 s later. The runner reports the file `not ok` with that exit code.
//
// The deadline runs on a worker thread, so it fires even while the main thread is blocked in a
// synchronous call (spawnSync of a command that never returns).
import { after, afterEach, beforeEach } from 'node:test';
import { isMainThread, Worker } from 'node:worker_threads';
import { relative } from 'node:path';

const ms = (name, fallback) => {
  const v = Number(process.env[name]);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const stallMs = ms('BUILDYARD_TEST_STALL_MS', 10 * 60_000);
const exitMs = ms('BUILDYARD_TEST_EXIT_MS', 2 * 60_000);
const file = relative(process.cwd(), process.argv[1] ?? '(unknown file)');

// Plain CommonJS: it runs without the --import hooks (execArgv: []), so neither tsx nor this
// guard loads again inside it.
const watchdog = `
const { parentPort, workerData } = require('node:worker_threads');
const { writeSync } = require('node:fs');
let timer;
let acked = false;
parentPort.on('message', (m) => {
  if (m === 'ack') { acked = true; return; }
  clearTimeout(timer);
  timer = setTimeout(() => {
    writeSync(2, 'test-guard: ' + workerData.file + ': ' + m.what + ' after ' + Math.round(m.ms / 1000) + ' s; stopping the file (SIGTERM, then SIGKILL 30 s later)\\n');
    parentPort.postMessage('fired');
    // The main thread sends the SIGTERM itself when it can; if it is blocked, this does.
    setTimeout(() => { if (!acked) process.kill(process.pid, 'SIGTERM'); }, 5000);
    setTimeout(() => {
      writeSync(2, 'test-guard: ' + workerData.file + ': still running 30 s after SIGTERM; SIGKILL\\n');
      process.kill(process.pid, 'SIGKILL');
    }, 30000);
  }, m.ms);
});
`;

// Only in a test file's own process: `node --test` (the runner) loads the same --import, and
// sets NODE_TEST_CONTEXT for the files it starts.
if (isMainThread && process.env.NODE_TEST_CONTEXT) {
  const worker = new Worker(watchdog, { eval: true, execArgv: [], workerData: { file }, stdout: false, stderr: false });
  worker.on('message', () => {
    // Only reached when the main thread is still responsive: say what keeps the loop alive.
    const open = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const counts = Object.entries(open.reduce((c, r) => ({ ...c, [r]: (c[r] ?? 0) + 1 }), {})).map(([r, n]) => `${n} ${r}`);
    process.stderr.write(`test-guard: ${file}: still open: ${counts.join(', ') || 'nothing'}\n`);
    worker.postMessage('ack');
    process.kill(process.pid, 'SIGTERM');
  });
  // After the listener: adding a 'message' listener refs the worker's port again.
  worker.unref();
  const arm = (what, limit) => worker.postMessage({ what, ms: limit });
  const quote = (name) => JSON.stringify(String(name).slice(0, 200));
  arm('no test started (imports and before() hooks still running)', stallMs);
  beforeEach((t) => arm(`the test ${quote(t.name)} has not finished`, stallMs));
  afterEach((t) => arm(`no test started or finished since ${quote(t.name)}`, stallMs));
  // Registered before any of the file's own hooks, so it runs first: the deadline covers the
  // file's teardown and its process's exit.
  after(() => arm('its tests are done but its after() hooks or its exit did not finish (something still open)', exitMs));
}
