// Issue 17 item 3: buildx's --cache-to/--cache-from through the BuildKit endpoint. The real test
// is a second, fresh cluster (its own Redis and worker state, the same registry) that runs no RUN
// because it imports the cache the first cluster exported (to the registry, or to the client's
// directory through the session's content store).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceTools, startCluster, type Cluster, testWorkDir } from '@buildyard/testkit';

const tools = referenceTools('docker-buildx');
// Without BuildKit's reference client there is nothing to drive the endpoint with.
const skip = tools.missing ?? false;
let first: Cluster;
let second: Cluster;
let work: string;

async function endpointCluster(name: string, registry?: Cluster['registry']): Promise<Cluster> {
  const cluster = await startCluster({
    workers: 1, registry,
    env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  const created = await buildx('create', '--name', name, '--driver', 'remote', cluster.buildkit!);
  assert.equal(created.code, 0, created.stderr);
  return cluster;
}

before(async () => {
  if (skip) return;
  work = testWorkDir('buildyard-buildkit-cache-');
  first = await endpointCluster('cache-first');
  second = await endpointCluster('cache-second', first.registry);
});
after(async () => { await second?.stop(); await first?.stop(); });

interface Run { code: number; stdout: string; stderr: string }

/** docker-buildx with its config kept in this suite's work dir. */
function buildx(...args: string[]): Promise<Run> {
  const env = { ...process.env, BUILDX_CONFIG: join(work, 'buildx') };
  return new Promise<Run>((resolveRun) => {
    execFile(tools.paths['docker-buildx'], args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A two-stage build whose RUNs write something different on every run (a rerun would show). */
function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), [
    `FROM ${first.busybox.reference} AS build`,
    `RUN echo ${name} && date +%s%N > /built`,
    `FROM ${first.busybox.reference}`,
    'COPY --from=build /built /built',
    'RUN cat /built > /copied',
    '',
  ].join('\n'));
  return dir;
}

/** The RUN vertices of plain progress, and whether each was CACHED. */
function runSteps(stderr: string): Array<{ name: string; cached: boolean }> {
  const vertices = [...stderr.matchAll(/^#(\d+) (\[.*\] RUN .*)$/gm)].map((m) => ({ id: m[1], name: m[2] }));
  const unique = [...new Map(vertices.map((v) => [v.id, v])).values()];
  return unique.map((v) => ({ name: v.name, cached: new RegExp(`^#${v.id} CACHED$`, 'm').test(stderr) }));
}

function assertAllCached(stderr: string): void {
  const steps = runSteps(stderr);
  assert.equal(steps.length, 2, `two RUN steps:\n${stderr}`);
  for (const s of steps) assert.ok(s.cached, `${s.name} CACHED:\n${stderr}`);
}

test('buildx --cache-to type=registry,mode=max on one cluster; a fresh cluster with --cache-from type=registry runs no RUN', { skip }, async () => {
  const dir = project('registry-cache');
  const ref = `${first.registry.host}/buildx/cache:registry`;
  const exported = await buildx('--builder', 'cache-first', 'build', '--progress', 'plain', '--cache-to', `type=registry,ref=${ref},mode=max`, dir);
  assert.equal(exported.code, 0, exported.stderr);
  assert.ok(runSteps(exported.stderr).every((s) => !s.cached), `the first build runs its RUNs:\n${exported.stderr}`);
  // BuildKit's cache vertices: the export after the image, the import before the steps.
  assert.match(exported.stderr, /^#(\d+) exporting cache to registry\n(#\1 .*\n)*#\1 DONE/m);

  const imported = await buildx('--builder', 'cache-second', 'build', '--progress', 'plain', '--cache-from', `type=registry,ref=${ref}`, dir);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match(imported.stderr, new RegExp(`^#(\\d+) importing cache manifest from ${ref.replace(/[.]/g, '\\.')}\\n(#\\1 .*\\n)*#\\1 DONE`, 'm'));
  assertAllCached(imported.stderr);
});

test('buildx --cache-to type=inline --push on one cluster; a fresh cluster with --cache-from the image runs no RUN', { skip }, async () => {
  const dir = project('inline-cache');
  const image = `${first.registry.host}/buildx/inline:1`;
  const pushed = await buildx('--builder', 'cache-first', 'build', '--progress', 'plain', '--cache-to', 'type=inline', '-t', image, '--push', dir);
  assert.equal(pushed.code, 0, pushed.stderr);

  const imported = await buildx('--builder', 'cache-second', 'build', '--progress', 'plain', '--cache-from', `type=registry,ref=${image}`, dir);
  assert.equal(imported.code, 0, imported.stderr);
  // mode=min inline cache holds the final stage's chain: its RUN hits; the build stage's RUN is not needed.
  const final = runSteps(imported.stderr).find((s) => s.name.includes('cat /built'));
  assert.ok(final?.cached, `the final stage's RUN CACHED:\n${imported.stderr}`);
});

test('buildx --cache-to type=local on one cluster writes BuildKit\'s layout through the session; a fresh cluster with --cache-from type=local runs no RUN', { skip }, async () => {
  const dir = project('local-cache');
  const dest = join(work, 'local-out');
  const exported = await buildx('--builder', 'cache-first', 'build', '--progress', 'plain', '--cache-to', `type=local,dest=${dest},mode=max`, dir);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stderr, /^#(\d+) sending cache export\n(#\1 .*\n)*#\1 DONE/m);
  // As buildkitd's: index.json tags the cache index "latest"; the index's last entry is the cache config; every blob is there.
  const index = JSON.parse(readFileSync(join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
  const top = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'latest');
  assert.ok(top, JSON.stringify(index));
  const blob = (digest: string) => join(dest, 'blobs/sha256', digest.slice('sha256:'.length));
  const cacheIndex = JSON.parse(readFileSync(blob(top.digest), 'utf8')) as { manifests: Array<{ mediaType: string; digest: string }> };
  assert.equal(cacheIndex.manifests.at(-1)?.mediaType, 'application/vnd.buildkit.cacheconfig.v0');
  for (const m of cacheIndex.manifests) assert.ok(existsSync(blob(m.digest)), `${m.digest} in ${dest}`);

  const imported = await buildx('--builder', 'cache-second', 'build', '--progress', 'plain', '--cache-from', `type=local,src=${dest}`, dir);
  assert.equal(imported.code, 0, imported.stderr);
  assert.match(imported.stderr, new RegExp(`^#(\\d+) importing cache manifest from local:${dest.replace(/[.]/g, '\\.')}\\n(#\\1 .*\\n)*#\\1 DONE`, 'm'));
  assertAllCached(imported.stderr);
});
