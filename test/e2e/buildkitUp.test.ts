// Issue 17: `buildyard up` (the built binaries, as a user runs them) serves the BuildKit endpoint
// over TLS with certificates it generates, names it in `up --json`, and docker buildx's remote
// driver builds on it with those files; a client without the certificate is refused.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { referenceTools } from '@buildyard/testkit';

const repoRoot = resolve(import.meta.dirname, '../..');
const bin = join(repoRoot, 'apps/cli/bin/buildyard.js');
const built = ['apps/cli/dist/main.js', 'apps/buildyardd/dist/main.js', 'apps/worker/dist/main.js', 'apps/dashboard/dist/main.js'].every((f) => existsSync(join(repoRoot, f)));
const tools = referenceTools('buildctl', 'docker-buildx');
const skip = tools.missing ?? (!built && 'run npm run build first (npm test does)');

interface Run { code: number; stdout: string; stderr: string }
const run = (file: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> => new Promise((done) => {
  execFile(file, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
});

test('up generates the BuildKit endpoint\'s CA and certificates and prints them under "buildkit"; docker buildx --driver remote builds on it with them', { skip }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'buildyard-bk-up-'));
  const stateDir = join(work, 'cluster');
  const env = { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: '', BUILDYARD_TOKEN: '', BUILDX_CONFIG: join(work, 'buildx') };
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: work, env, encoding: 'utf8', timeout: 300_000 });
  after(() => { cli('down', '--state-dir', stateDir); rmSync(work, { recursive: true, force: true }); });

  const up = cli('up', '--workers', '1', '--state-dir', stateDir, '--json');
  assert.equal(up.status, 0, up.stderr);
  const endpoints = JSON.parse(up.stdout) as { registry: string; buildkit: { addr: string; cacert: string; cert: string; key: string } };
  const bk = endpoints.buildkit;
  assert.match(bk.addr, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  for (const f of [bk.cacert, bk.cert, bk.key]) assert.ok(f.startsWith(stateDir) && existsSync(f), `${f} is in the state dir`);
  assert.equal(statSync(bk.key).mode & 0o777, 0o600, 'the client key is private');
  assert.match(readFileSync(bk.cert, 'utf8'), /^-----BEGIN CERTIFICATE-----/);

  const created = await run(tools.paths['docker-buildx'], ['create', '--name', 'up', '--driver', 'remote', '--driver-opt', `cacert=${bk.cacert},cert=${bk.cert},key=${bk.key}`, bk.addr], env);
  assert.equal(created.code, 0, created.stderr);
  const inspect = await run(tools.paths['docker-buildx'], ['--builder', 'up', 'inspect', '--bootstrap'], env);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /Status:\s+running/);
  assert.match(inspect.stdout, /Platforms:.*linux\/amd64/);

  const ctx = join(work, 'ctx');
  mkdirSync(ctx);
  const marker = `via-up-${Date.now()}`;
  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${endpoints.registry}/library/busybox:latest\nRUN echo ${marker} > /marker\n`);
  const out = join(work, 'out');
  const build = await run(tools.paths['docker-buildx'], ['--builder', 'up', 'build', '--progress', 'plain', '-o', `type=local,dest=${out}`, ctx], env);
  assert.equal(build.code, 0, build.stderr);
  assert.equal(readFileSync(join(out, 'marker'), 'utf8'), `${marker}\n`);

  // The endpoint is TLS with client certificates only: without the client certificate, nothing is served.
  const anonymous = await run(tools.paths.buildctl, ['--addr', bk.addr, '--tlscacert', bk.cacert, 'debug', 'workers'], env);
  assert.notEqual(anonymous.code, 0, 'a client without a certificate is refused');
  const withCert = await run(tools.paths.buildctl, ['--addr', bk.addr, '--tlscacert', bk.cacert, '--tlscert', bk.cert, '--tlskey', bk.key, 'debug', 'workers'], env);
  assert.equal(withCert.code, 0, withCert.stderr);
  assert.match(withCert.stdout, /worker-1/);
});
