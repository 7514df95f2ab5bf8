// `buildyard up` / `down` as a user runs them (the built binaries), plus the multi-platform
// example built on the cluster they start.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const repoRoot = resolve(import.meta.dirname, '../..');
const bin = join(repoRoot, 'apps/cli/bin/buildyard.js');
const built = ['apps/cli/dist/main.js', 'apps/buildyardd/dist/main.js', 'apps/worker/dist/main.js', 'apps/dashboard/dist/main.js'].every((f) => existsSync(join(repoRoot, f)));

test('up starts a cluster that answers, is idempotent, builds the multi-platform example; down leaves nothing', { skip: !built && 'run npm run build first (npm test does)' }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'buildyard-up-'));
  const stateDir = join(work, 'cluster');
  const env = { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: '', BUILDYARD_TOKEN: '' };
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, ...args], { cwd: work, env, encoding: 'utf8', timeout: 180_000 });
  after(() => { cli('down', '--state-dir', stateDir); rmSync(work, { recursive: true, force: true }); });

  const up = cli('up', '--workers', '1', '--state-dir', stateDir, '--json');
  assert.equal(up.status, 0, up.stderr);
  const endpoints = JSON.parse(up.stdout);
  assert.match(endpoints.frontend, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.match(endpoints.registry, /^127\.0\.0\.1:\d+$/);
  assert.match(endpoints.dashboard, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(endpoints.dashboardUrl.startsWith(`${endpoints.dashboard}/?token=`), true, endpoints.dashboardUrl);
  // The URL opens the dashboard: its token signs the browser in (a cookie, then the page).
  const opened = await fetch(endpoints.dashboardUrl, { redirect: 'manual' });
  assert.equal(opened.status, 303);
  assert.match(opened.headers.get('set-cookie') ?? '', /HttpOnly/i);
  const page = await fetch(new URL(opened.headers.get('location') ?? '/', endpoints.dashboard), { headers: { cookie: (opened.headers.get('set-cookie') ?? '').split(';')[0] } });
  assert.equal(page.status, 200);
  // It is the dashboard's read token, not the build token: the build token does not open it.
  const buildToken = readFileSync(join(stateDir, 'token'), 'utf8').trim();
  assert.equal((await fetch(`${endpoints.dashboard}/?token=${buildToken}`, { redirect: 'manual' })).status, 401);
  // Redis requires the password up generated, kept 0600 in the state dir (issue 14).
  assert.equal(statSync(join(stateDir, 'redis-password')).mode & 0o777, 0o600);
  assert.equal(endpoints.redisPasswordFile, join(stateDir, 'redis-password'));
  assert.doesNotMatch(endpoints.redis, /@/, 'the password is not printed');
  const noAuth = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', new URL(endpoints.redis).port, 'KEYS', '*'], { encoding: 'utf8' });
  assert.match(noAuth.stdout + noAuth.stderr, /NOAUTH/);
  assert.deepEqual(JSON.parse(cli('up', '--workers', '1', '--state-dir', stateDir, '--json').stdout), endpoints, 'a second up returns the running cluster');

  const ls = cli('builder', 'ls');
  assert.match(ls.stdout, /local\s*\*/, 'the cluster is the current builder');
  const image = `${endpoints.registry}/examples/multi:1`;
  const build = cli('build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64', '--build-arg', `BASE=${endpoints.registry}/library/busybox:latest`, '-t', image, '--push', join(repoRoot, 'examples/multi-platform'));
  assert.equal(build.status, 0, build.stderr);
  assert.match(build.stderr, /built on linux\/amd64 for linux\/arm64|RUN mkdir -p \/out/);
  const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--tls-verify=false', '--override-arch', 'arm64', `docker://${image}`], { encoding: 'utf8' }));
  assert.equal(config.architecture, 'arm64');

  const pids = Object.values(JSON.parse(readFileSync(join(stateDir, 'cluster.json'), 'utf8')).pids) as number[];
  const down = cli('down', '--state-dir', stateDir);
  assert.equal(down.status, 0, down.stderr);
  assert.match(down.stdout, /stopped .*worker-1.*redis/);
  for (const pid of pids) assert.ok(!existsSync(`/proc/${pid}`), `process ${pid} stopped`);
  assert.deepEqual(readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(stateDir)), [], 'no mounts left');
  assert.doesNotMatch(cli('builder', 'ls').stdout, /\blocal\b/, 'the builder is removed');
});
