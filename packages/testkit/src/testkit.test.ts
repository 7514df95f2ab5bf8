import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, startRedisCluster, startRegistry, seedBusybox, busyboxRootfs, testWorkDir, until } from './index.js';

test('Redis and a registry start on loopback; busybox is seeded as a two-platform OCI index', async () => {
  const [redis, registry] = await Promise.all([startRedis(), startRegistry()]);
  after(() => Promise.all([redis.stop(), registry.stop()]));
  assert.equal(redis.url, `redis://:${redis.password}@127.0.0.1:${redis.port}`);
  assert.match(registry.host, /^127\.0\.0\.1:\d+$/);

  const seeded = await seedBusybox(registry);
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${seeded.reference}`], { encoding: 'utf8' }));
  assert.equal(raw.mediaType, 'application/vnd.oci.image.index.v1+json');
  const platforms = raw.manifests.map((m: { platform: { os: string; architecture: string } }) => `${m.platform.os}/${m.platform.architecture}`).sort();
  assert.deepEqual(platforms, ['linux/amd64', 'linux/arm64']);
  assert.deepEqual(Object.keys(seeded.manifests).sort(), platforms);

  const config = JSON.parse(execFileSync('skopeo', ['inspect', '--config', '--tls-verify=false', '--override-arch', 'arm64', `docker://${seeded.reference}`], { encoding: 'utf8' }));
  assert.equal(config.architecture, 'arm64');
  assert.deepEqual(config.config.Cmd, ['sh']);
  assert.equal(config.rootfs.diff_ids.length, 1);
});

test('the arm64 busybox runs under binfmt emulation in a chroot and reports aarch64', { skip: process.arch !== 'x64' && 'host is not amd64' }, async () => {
  const rootfs = await busyboxRootfs('arm64');
  const machine = execFileSync('chroot', [rootfs, '/bin/uname', '-m'], { encoding: 'utf8' }).trim();
  assert.equal(machine, 'aarch64');
});

test('killing the test process leaves no redis-server or registry behind', async () => {
  const here = dirname(fileURLToPath(import.meta.url));
  // Killed, it cannot remove the services' state dirs: they go in a temp dir this process removes.
  const scratch = testWorkDir('buildyard-testkit-killed-');
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(here, 'fixtures/start-services.ts')], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, TMPDIR: scratch } });
  const pids = await new Promise<number[]>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(JSON.parse(out)); });
    child.once('exit', (code) => reject(new Error(`fixture exited early with ${code}`)));
  });
  assert.equal(pids.length, 2);
  for (const pid of pids) assert.ok(existsSync(`/proc/${pid}`), `service ${pid} should be running`);
  child.kill('SIGKILL');
  // The watchdogs notice within a poll, then TERM their service (KILL after 5 s): the deadline
  // bounds a hang only.
  await until('the services to exit after their test process', () => pids.every((pid) => !existsSync(`/proc/${pid}`)), 60_000, 100)
    .catch(() => assert.fail(`services ${pids.filter((pid) => existsSync(`/proc/${pid}`)).join(', ')} outlived their test process`));
});

test('a Redis Cluster\'s nodes listen for the cluster bus on ports chosen free, not on port + 10000, which nothing checked', async () => {
  const cluster = await startRedisCluster();
  after(() => cluster.stop());
  const nodes = execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(cluster.nodes[0]!.port), 'CLUSTER', 'NODES'], { encoding: 'utf8', env: { ...process.env, REDISCLI_AUTH: cluster.password } });
  const ports = [...nodes.matchAll(/127\.0\.0\.1:(\d+)@(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
  assert.equal(ports.length, cluster.nodes.length, nodes);
  for (const [port, bus] of ports) assert.notEqual(bus, port + 10_000, `node ${port} listens on the default bus port`);
});
