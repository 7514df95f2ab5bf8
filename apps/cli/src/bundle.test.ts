// The bundle bin/buildyard.js runs (scripts/bundle.mjs): it holds no test-only package, and
// `--version` / `--help` load only its CommonJS front (commander and the program), never gRPC, the proto
// stubs, the progress renderers, the registry client or the local cluster's code. Which modules a
// run loads is deterministic, so this checks start-up cost without timing anything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const appDir = resolve(fileURLToPath(import.meta.url), '../..');

interface Metafile { outputs: Record<string, { inputs: Record<string, unknown>; entryPoint?: string }> }

// The bundle is built into a directory of its own under apps/cli (not dist/, which a concurrent
// `npm run build` may rewrite): at that depth the version lookup (../package.json) and the
// external packages (node_modules up the tree) resolve as they do from dist/.
let outdir = '';
let meta: Metafile;

before(async () => {
  outdir = await mkdtemp(join(appDir, '.bundle-test-'));
  await run(process.execPath, [join(appDir, 'scripts/bundle.mjs'), `--outdir=${outdir}`, `--metafile=${join(outdir, 'meta.json')}`], { cwd: appDir });
  meta = JSON.parse(await readFile(join(outdir, 'meta.json'), 'utf8')) as Metafile;
});

after(async () => {
  if (outdir) await rm(outdir, { recursive: true, force: true });
});

const inputsOf = (output: string) => Object.keys(meta.outputs[output].inputs);

test('the bundle holds no test-only package', () => {
  const inputs = Object.keys(meta.outputs).flatMap(inputsOf);
  assert.ok(inputs.some((i) => i.includes('packages/client/src/')), 'the bundle should hold @buildyard/client (wrong metafile?)');
  for (const banned of [/packages\/testkit\//, /node_modules\/testcontainers\//, /node_modules\/@testcontainers\//, /packages\/scheduler\//, /node_modules\/bullmq\//]) {
    assert.deepEqual(inputs.filter((i) => banned.test(i)), [], `the bundle includes ${banned.source}`);
  }
});

/** What start-up must not pay for: gRPC, proto stubs, progress renderers, zod, the registry client, up's PKI. */
const HEAVY = [/node_modules\/@grpc\/grpc-js\//, /proto\/src\/gen\//, /node_modules\/@bufbuild\//, /node_modules\/zod\//, /node_modules\/log-update\//, /node_modules\/node-forge\//, /packages\/oci\/src\/RegistryClient\.ts$/, /packages\/client\/src\/(runBuild|ProgressRenderer|connectBuilder)\.ts$/];
const HEAVY_EXTERNAL = /node_modules\/(@grpc\/grpc-js|@opentelemetry\/|@buildyard\/telemetry|ssh2)\b/;

/** The module URLs `node <bundle> ...args` loads, recorded by a module-loader hook; `code` is its exit code. */
async function loadedModules(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<{ stdout: string; stderr: string; code: number; urls: string[] }> {
  const log = join(outdir, `loaded-${args.join('_').replace(/\W/g, '')}.txt`);
  const hooks = join(outdir, 'hooks.mjs');
  await writeFile(hooks, [
    "import { appendFileSync } from 'node:fs';",
    'let log;',
    'export function initialize(data) { log = data.log; }',
    'export async function load(url, context, next) { appendFileSync(log, url + "\\n"); return next(url, context); }',
  ].join('\n'));
  const register = join(outdir, 'register.mjs');
  // CommonJS modules required from node_modules (an external package's own files) pass no ESM
  // hook: they are listed from the require cache on exit, as cjs:<path>.
  await writeFile(register, [
    "import { createRequire, register } from 'node:module';",
    "import { appendFileSync } from 'node:fs';",
    `register(${JSON.stringify(pathToFileURL(hooks).href)}, { data: { log: process.env.BUNDLE_TEST_LOG } });`,
    "process.on('exit', () => appendFileSync(process.env.BUNDLE_TEST_LOG, Object.keys(createRequire(import.meta.url).cache).map((f) => `cjs:${f}\\n`).join('')));",
  ].join('\n'));
  const result = await run(process.execPath, ['--import', pathToFileURL(register).href, join(outdir, 'buildyard.cjs'), ...args], {
    cwd: outdir, env: { ...process.env, BUNDLE_TEST_LOG: log, XDG_CONFIG_HOME: outdir, OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '', ...extraEnv },
  }).then((r) => ({ ...r, code: 0 }), (e: { stdout: string; stderr: string; code: number }) => ({ stdout: e.stdout, stderr: e.stderr, code: e.code }));
  return { ...result, urls: (await readFile(log, 'utf8')).split('\n').filter(Boolean) };
}

/** The loaded files: ES modules (file: URLs from the hook) and CommonJS ones (cjs:). */
const loadedFiles = (urls: string[]) => [...urls.filter((u) => u.startsWith('file:')).map((u) => fileURLToPath(u)), ...urls.filter((u) => u.startsWith('cjs:')).map((u) => u.slice(4))];

/** The bundle's own files among the loaded URLs (the CommonJS front and ES module chunks), each with its metafile inputs. */
function loadedChunks(urls: string[]): { output: string; inputs: string[] }[] {
  return loadedFiles(urls).filter((f) => f.startsWith(outdir) && /\.[cm]js$/.test(f)).map((f) => {
    const output = Object.keys(meta.outputs).find((o) => resolve(appDir, o) === f);
    assert.ok(output, `${f} is not an output of the bundle`);
    return { output, inputs: inputsOf(output) };
  });
}

for (const args of [['--version'], ['--help'], ['build', '--help']]) {
  test(`buildyard ${args.join(' ')} loads no gRPC, proto, progress, registry or cluster code`, async () => {
    const { stdout, code, urls } = await loadedModules(args);
    assert.equal(code, 0);
    assert.match(stdout, args[0] === '--version' ? /^\d+\.\d+\.\d+\n$/ : /Usage: buildyard/);
    const files = loadedFiles(urls);
    assert.ok(files.some((f) => f === join(outdir, 'buildyard.cjs')), `the bundle's front was not loaded: ${files.join(', ')}`);
    // The CommonJS front answers alone: starting Node's ES module loader costs ~10 ms.
    assert.deepEqual(files.filter((f) => f.startsWith(outdir) && f.endsWith('.mjs')), [], 'start-up loads ES module chunks');
    assert.deepEqual(files.filter((f) => HEAVY_EXTERNAL.test(f)), [], 'start-up loads an external package it does not need');
    for (const { output, inputs } of loadedChunks(urls)) {
      const heavy = inputs.filter((i) => HEAVY.some((h) => h.test(i)));
      assert.deepEqual(heavy, [], `start-up loads ${output}, a chunk holding ${heavy.slice(0, 5).join(', ')}: import these in the command's action (see apps/cli/src/load/)`);
    }
  });
}

test('buildyard build loads what a build needs and nothing of the other commands before its first byte', async () => {
  // Port 1 refuses the connection: the build gets as far as its first byte and stops there.
  const { code, stderr, urls } = await loadedModules(['build', '--builder', 'tcp://127.0.0.1:1', '--progress', 'plain', await buildContext()]);
  assert.equal(code, 3, stderr);
  const inputs = loadedChunks(urls).flatMap((c) => c.inputs);
  assert.ok(inputs.some((i) => /packages\/client\/src\/runBuild\.ts$/.test(i)), 'the build chunk was not loaded');
  // The bundled copy of gRPC, not node_modules' (see grpcSwitch() in scripts/bundle.mjs).
  assert.ok(inputs.some((i) => /node_modules\/@grpc\/grpc-js\/build\/src\/client\.js$/.test(i)), 'the chunk with the bundled gRPC was not loaded');
  assert.deepEqual(urls.filter((u) => u.startsWith('cjs:') && u.includes('/node_modules/@grpc/')), [], 'a build without tracing loaded @grpc/grpc-js from node_modules');
  // zod (the progress stream's schemas), ssh2 (only --ssh), node-forge (up), bake's parsers, the
  // registry client; the tty view (log-update) and rawjson's SolveStatus translation (BuildKit's
  // stubs) for --progress plain; tar-stream (URL contexts only).
  for (const banned of [/node_modules\/zod\//, /node_modules\/ssh2\//, /node_modules\/node-forge\//, /packages\/bake\//, /node_modules\/yaml\//, /packages\/oci\/src\/RegistryClient\.ts$/,
    /node_modules\/log-update\//, /packages\/client\/src\/(TtyRenderer|RawJsonRenderer)\.ts$/, /proto\/src\/gen\/moby\//, /node_modules\/tar-stream\//]) {
    assert.deepEqual(inputs.filter((i) => banned.test(i)), [], `buildyard build loads ${banned.source}`);
  }
});

test('buildyard build --progress rawjson loads its SolveStatus translation and not the tty view', async () => {
  const { code, stderr, urls } = await loadedModules(['build', '--builder', 'tcp://127.0.0.1:1', '--progress', 'rawjson', await buildContext()]);
  assert.equal(code, 3, stderr);
  const inputs = loadedChunks(urls).flatMap((c) => c.inputs);
  assert.ok(inputs.some((i) => /packages\/client\/src\/RawJsonRenderer\.ts$/.test(i)), 'the rawjson renderer was not loaded');
  assert.deepEqual(inputs.filter((i) => /node_modules\/log-update\/|packages\/client\/src\/TtyRenderer\.ts$/.test(i)), [], 'buildyard build --progress rawjson loads the tty view');
});

async function buildContext(): Promise<string> {
  const context = join(outdir, 'context');
  await mkdir(context, { recursive: true });
  await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
  await writeFile(join(context, 'a'), 'a\n');
  return context;
}

test('buildyard build calls through node_modules\' @grpc/grpc-js when tracing, the copy OpenTelemetry patches', async () => {
  // The console exporter prints the command's spans on stdout: the gRPC client span of the
  // context upload exists only if the call went through the instrumented copy.
  const { code, stdout, stderr } = await loadedModules(['build', '--builder', 'tcp://127.0.0.1:1', '--progress', 'plain', await buildContext()], { OTEL_TRACES_EXPORTER: 'console' });
  assert.equal(code, 3, stderr);
  assert.match(stdout, /name: 'buildyard build'/, 'no command span: did telemetry start?');
  assert.match(stdout, /name: 'grpc\.buildyard\.v1\.ContextSync\/Sync'/, 'the traced build\'s gRPC call made no span: it went through the bundled, uninstrumented copy');
});

test('a reader that closes the pipe early ends --help quietly (exit 0), as a Go CLI ends on SIGPIPE', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, [join(outdir, 'buildyard.cjs'), '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before the child can have written anything: its first write meets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const code = await new Promise<number | null>((done) => child.on('close', done));
  assert.equal(stderr, '');
  assert.equal(code, 0);
});

test('the bundled gRPC asks net.isIPv6 only of addresses with a colon (its pattern costs a build ~4 ms to compile and warm up)', async () => {
  const grpc = await readFile(join(outdir, 'buildyard-grpc.cjs'), 'utf8');
  assert.doesNotMatch(grpc, /\(0,\s*net_1\.isIPv6\)\(/, 'a call of net.isIPv6 was not rewritten (see grpcClientFixes() in scripts/bundle.mjs)');
  assert.match(grpc, /__isIPv6=s=>typeof s=="string"&&s\.includes\(":"\)&&require\("net"\)\.isIPv6\(s\)/);
});
