// bin/codeCache.js: on Node 20 the CLI's CommonJS front runs from V8's code cache of an earlier
// run. What must hold: a cache never runs code other than the file's (V8 checks only the length),
// a cache from a directory others can write is never read, a broken cache costs nothing but
// itself, and the bundle's dynamic imports work from a cached compile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProcess, type Finished } from './runProcess.test-util.js';

const appDir = resolve(fileURLToPath(import.meta.url), '../..');
const loader = join(appDir, 'bin/codeCache.js');

/** A CommonJS file whose run records `mark`; `.id` as scripts/bundle.mjs writes one. */
async function program(dir: string, mark: string, id = mark): Promise<string> {
  const file = join(dir, 'prog.cjs');
  // Same length for every 3-letter mark: the case where V8's own check accepts a stale cache.
  await writeFile(file, `globalThis.codeCacheMark = ${JSON.stringify(mark)};\nfunction unused() { return [1, 2, 3].map((x) => x * 2); }\nmodule.exports = { unused };\n`);
  await writeFile(`${file}.id`, `${id}\n`);
  return file;
}

async function withDirs(fn: (work: string, cache: string) => Promise<void>): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'buildyard-codecache-'));
  try {
    await fn(work, join(work, 'cache', 'v8'));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/**
 * Runs `file` through the loader in a new process (V8 keeps compiled scripts per process, which
 * would hide what the cache does); returns how the cache was used and what the program recorded.
 */
function runFile(file: string, cache: string): Promise<{ cache: string; mark: string }> {
  const script = `const r = require(${JSON.stringify(loader)}).runWithCodeCache(${JSON.stringify(file)}, ${JSON.stringify(cache)});
r.save(); console.log(JSON.stringify({ cache: r.cache, mark: globalThis.codeCacheMark }));`;
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.on('error', rej);
    child.on('close', (code) => (code === 0 ? res(JSON.parse(out) as { cache: string; mark: string }) : rej(new Error(`loader exited ${code}`))));
  });
}

test('a run writes the cache (owner-only), the next run takes it', async () => {
  await withDirs(async (work, cache) => {
    const file = await program(work, 'one');
    assert.deepEqual(await runFile(file, cache), { cache: 'absent', mark: 'one' });
    const files = await readdir(cache);
    assert.equal(files.length, 1);
    assert.equal((await stat(cache)).mode & 0o777, 0o700);
    assert.equal((await stat(join(cache, files[0]))).mode & 0o777, 0o600);
    assert.deepEqual(await runFile(file, cache), { cache: 'accepted', mark: 'one' });
  });
});

test('a new build of the same length, or the same build edited by hand, never runs the old code', async () => {
  await withDirs(async (work, cache) => {
    const file = await program(work, 'one');
    await runFile(file, cache);
    await program(work, 'two'); // a new build: new content hash, same length
    assert.deepEqual(await runFile(file, cache), { cache: 'absent', mark: 'two' });
    await program(work, 'six', 'two'); // edited by hand: the old hash, same length, a new mtime
    const later = new Date(Date.now() + 60_000);
    await utimes(file, later, later);
    assert.deepEqual(await runFile(file, cache), { cache: 'absent', mark: 'six' });
  });
});

test('a cache directory other users can write is neither read nor written', async () => {
  await withDirs(async (work, cache) => {
    const file = await program(work, 'one');
    const { mtime } = await stat(file);
    await runFile(file, cache);
    await chmod(cache, 0o777);
    const before = await readdir(cache);
    await program(work, 'two', 'one');
    await utimes(file, mtime, mtime); // the cache's key again: taking it would run 'one'
    assert.deepEqual(await runFile(file, cache), { cache: 'untrusted', mark: 'two' });
    assert.deepEqual(await readdir(cache), before);
  });
});

test('a broken cache is rejected, the program still runs, and the cache is written again', async () => {
  await withDirs(async (work, cache) => {
    const file = await program(work, 'one');
    await runFile(file, cache);
    const [name] = await readdir(cache);
    await writeFile(join(cache, name), Buffer.alloc(4096, 7));
    assert.deepEqual(await runFile(file, cache), { cache: 'rejected', mark: 'one' });
    assert.deepEqual(await runFile(file, cache), { cache: 'accepted', mark: 'one' });
  });
});

/** Runs bin/buildyard.js (the built bundle) with its cache under `xdg`. */
function cli(args: string[], xdg: string, cwd: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<Finished> {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CACHE_HOME: xdg, BUILDYARD_BUILDER: '', ...extraEnv };
  delete env.NODE_DISABLE_COMPILE_CACHE;
  delete env.BUILDYARD_CACHE_DIR;
  return runProcess(process.execPath, [join(appDir, 'bin/buildyard.js'), ...args], { cwd, env });
}

test('the CLI from a cached compile: same help, its actions import their chunks, gRPC from its own cache', { skip: Number(process.versions.node.split('.')[0]) >= 22 && 'Node 22+ uses its own compile cache' }, async () => {
  await withDirs(async (work) => {
    const xdg = join(work, 'xdg');
    const cache = join(xdg, 'buildyard', 'v8');
    // `--version` runs little of the front: its cache is small, and a command that runs more
    // writes it again, bigger.
    assert.equal((await cli(['--version'], xdg, work)).code, 0);
    const [name] = await readdir(cache);
    const small = (await stat(join(cache, name))).size;
    const first = await cli(['--help'], xdg, work);
    assert.equal(first.code, 0, first.stderr);
    const written = await readFile(join(cache, name));
    assert.ok(written.length > small, `the cache grew (${small} -> ${written.length} bytes)`);
    const second = await cli(['--help'], xdg, work);
    assert.equal(second.stdout, first.stdout);
    assert.deepEqual(await readFile(join(cache, name)), written, 'a full cache is taken, not written again');
    // `build` imports its ES module chunks (dynamic import from code compiled from the cache), and
    // the front loads the bundled gRPC from its own cache first: the chunks' require() finds that
    // instance (Node's module debug log shows a file it loads). Port 1 refuses the connection.
    await mkdir(join(work, 'ctx'));
    await writeFile(join(work, 'ctx', 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
    await writeFile(join(work, 'ctx', 'a'), 'a\n');
    for (const round of ['writes the caches', 'takes them']) {
      const build = await cli(['build', '--builder', 'tcp://127.0.0.1:1', '--progress', 'plain', 'ctx'], xdg, work, { NODE_DEBUG: 'module' });
      assert.equal(build.code, 3, `${round}: ${build.stderr.slice(-2000)}`);
      assert.match(build.stderr, /ERROR: .*cannot reach builder "tcp:\/\/127\.0\.0\.1:1"/, round);
      assert.doesNotMatch(build.stderr, /ERR_VM|ExperimentalWarning/, round);
      assert.doesNotMatch(build.stderr, /: load "[^"]*buildyard-grpc\.cjs"/, `${round}: gRPC was loaded by require(), not from the code cache`);
      assert.ok((await readdir(cache)).some((f) => f.startsWith('buildyard-grpc.cjs-')), `${round}: no code cache of the bundled gRPC`);
    }
  });
});
