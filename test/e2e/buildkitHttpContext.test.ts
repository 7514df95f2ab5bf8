// Issue 17: an http(s) build context through the BuildKit endpoint (`buildctl --opt
// context=https://host/ctx.tar`, `docker buildx build https://host/ctx.tar`). The frontend
// downloads it with ADD <url>'s download under the tenant's egress policy: a tarball served from
// "the outside" (a network namespace) is the context; a plain file is the Dockerfile; a URL aimed
// at the cluster's own services (loopback) is refused before any connection, in one line.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceTools } from '@buildyard/testkit';
import { useOutsideCluster } from './security/outsideCluster.js';
import { UrlServer } from './urlServerControl.js';
import { Buildkitd } from '../conformance/lib/buildkit.js';

const tools = referenceTools('buildctl', 'buildkitd', 'docker-buildx');
const skip = process.getuid?.() !== 0 ? 'needs root (a cluster and a network namespace)' : tools.missing ?? false;
let server: UrlServer;

const env = useOutsideCluster('buildkit-http-context', !skip, {
  cluster: () => ({ workers: 1, env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' } }),
  start: async (outside) => { server = await UrlServer.start(outside); },
  stop: () => server?.stop(),
});

// The reference: the same URLs built by buildkitd, side by side.
// Started on first use: the cluster it pulls from exists only once the shared hooks ran.
let buildkitd: Buildkitd | undefined;
const reference = async () => (buildkitd ??= await Buildkitd.start(env.cluster.registry.host)).addr;
/** Scratch directories of this file's builds and archives, removed after its tests. */
const scratch: string[] = [];
const scratchDir = (prefix: string) => { const dir = mkdtempSync(join(tmpdir(), prefix)); scratch.push(dir); return dir; };
after(async () => {
  await buildkitd?.stop();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

interface Run { code: number; stdout: string; stderr: string }

async function buildctl(addr: string, ...args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(tools.paths.buildctl, ['--addr', addr, ...args], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A build of the context at `url` (no local) on the endpoint (or `addr`), its files written to a fresh directory. */
async function buildUrl(url: string, addr = env.cluster.buildkit!): Promise<Run & { out: string }> {
  const out = scratchDir('buildyard-http-context-out-');
  const run = await buildctl(addr, 'build', '--frontend', 'dockerfile.v0', '--opt', `context=${url}`, '--progress', 'plain', '--output', `type=local,dest=${out}`);
  return { ...run, out };
}

/** An uncompressed ustar archive of `files`: ASCII throughout, so the text-serving web server sends its bytes as they are. */
function tarOf(files: Record<string, string>): string {
  const dir = scratchDir('buildyard-http-context-src-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const bytes = execFileSync('tar', ['--format=ustar', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '-C', dir, ...Object.keys(files)]);
  assert.ok(bytes.every((b) => b < 0x80), 'an ASCII archive');
  return bytes.toString('latin1');
}

test('a tarball URL is the build context: its Dockerfile and files build, shown as "[internal] load remote build context"', { skip }, async () => {
  const nonce = env.outside.nonce;
  await server.serve({ body: tarOf({ Dockerfile: `FROM ${env.cluster.busybox.reference}\nCOPY app/hello.txt /hello.txt\nRUN cat /hello.txt\n`, 'app/hello.txt': `hello ${nonce}\n`, '.dockerignore': 'ignored.txt\n', 'ignored.txt': 'no\n' }) });
  const got = await buildUrl(`${server.base}/ctx-${nonce}.tar`);
  assert.equal(got.code, 0, got.stderr);
  assert.match(got.stderr, /^#(\d+) \[internal\] load remote build context\n(#\1 .*\n)*#\1 DONE/m);
  assert.equal(readFileSync(join(got.out, 'hello.txt'), 'utf8'), `hello ${nonce}\n`);
  assert.match(got.stderr, new RegExp(`hello ${nonce}`));
  // buildkitd: the same step name and the same files.
  const ref = await buildUrl(`${server.base}/ctx-${nonce}.tar`, await reference());
  assert.equal(ref.code, 0, ref.stderr);
  assert.match(ref.stderr, /^#\d+ \[internal\] load remote build context$/m);
  assert.deepEqual(execFileSync('find', ['.', '-maxdepth', '1', '-name', '*.txt'], { cwd: got.out, encoding: 'utf8' }), execFileSync('find', ['.', '-maxdepth', '1', '-name', '*.txt'], { cwd: ref.out, encoding: 'utf8' }));
  assert.equal(readFileSync(join(ref.out, 'hello.txt'), 'utf8'), `hello ${nonce}\n`);
  // docker buildx build URL: buildx hands the URL to the frontend as the context attribute.
  const config = scratchDir('buildyard-http-context-buildx-');
  const buildx = (...args: string[]) => new Promise<Run>((resolveRun) => {
    execFile(tools.paths['docker-buildx'], args, { env: { ...process.env, BUILDX_CONFIG: config }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
  const created = await buildx('create', '--name', 'httpctx', '--driver', 'remote', env.cluster.buildkit!);
  assert.equal(created.code, 0, created.stderr);
  const viaBuildx = await buildx('--builder', 'httpctx', 'build', '--progress', 'plain', '--no-cache', '-o', `type=local,dest=${join(config, 'out')}`, `${server.base}/ctx-${nonce}.tar`);
  assert.equal(viaBuildx.code, 0, viaBuildx.stderr);
  assert.equal(readFileSync(join(config, 'out', 'hello.txt'), 'utf8'), `hello ${nonce}\n`);
});

test('a URL that is no archive is the Dockerfile itself', { skip }, async () => {
  const nonce = env.outside.nonce;
  await server.serve({ body: `FROM ${env.cluster.busybox.reference}\nRUN echo only-a-dockerfile-${nonce} > /made\n` });
  const got = await buildUrl(`${server.base}/Dockerfile-${nonce}`);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(readFileSync(join(got.out, 'made'), 'utf8'), `only-a-dockerfile-${nonce}\n`);
  const ref = await buildUrl(`${server.base}/Dockerfile-${nonce}`, await reference());
  assert.equal(ref.code, 0, ref.stderr);
  assert.equal(readFileSync(join(ref.out, 'made'), 'utf8'), `only-a-dockerfile-${nonce}\n`);
});

test('a context URL aimed at the cluster (Redis, the registry, a redirect to loopback) is refused in one line before any connection', { skip }, async () => {
  const redis = new URL(env.cluster.redis.url);
  const registryPort = env.cluster.registry.host.split(':')[1];
  for (const [url, address] of [
    [`http://${redis.host}/ctx.tar`, redis.hostname],
    [`http://localhost:${registryPort}/v2/_catalog`, '127.0.0.1'],
    [`http://${env.outside.web}/redirect?to=${encodeURIComponent(`http://127.0.0.1:${registryPort}/v2/_catalog`)}`, '127.0.0.1'],
  ] as const) {
    const got = await buildUrl(url);
    assert.notEqual(got.code, 0, `${url} was fetched:\n${got.stderr}`);
    const error = got.stderr.split('\n').filter((l) => l.startsWith('error: ')).at(-1) ?? '';
    assert.match(error, /^error: .*context http:\/\/.* the address [\d.]+ is not reachable from builds \(worker\.egress\)/, got.stderr);
    assert.ok(error.includes(address), error);
    assert.match(got.stderr, /\[internal\] load remote build context\n(#\d+ .*\n)*#\d+ ERROR/, got.stderr);
  }
});
