// Issue 17: the registry cache in BuildKit's format, across implementations. buildkitd (v0.11.6)
// and a real cluster's BuildKit endpoint, both driven by buildctl, export to and import from the
// same registry. What can cross is the format, not the steps: BuildKit's record digests are its
// solver's LLB cache keys, Buildyard's are its own (see packages/cache/README.md), so each takes
// the other's cache without error and re-runs its steps; each reuses its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceTools, startCluster, type Cluster, testWorkDir } from '@buildyard/testkit';
import { Buildkitd } from '../conformance/lib/buildkit.js';

const CACHE_CONFIG = 'application/vnd.buildkit.cacheconfig.v0';
const tools = referenceTools('buildctl', 'buildkitd');
const skip = tools.missing ?? false;
let cluster: Cluster;
let buildkitd: Buildkitd;
let endpoint: string;
let work: string;

before(async () => {
  if (skip) return;
  cluster = await startCluster({
    workers: 1,
    env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  endpoint = cluster.buildkit!;
  buildkitd = await Buildkitd.start(cluster.registry.host);
  work = testWorkDir('buildyard-cache-interop-');
});
after(async () => { await buildkitd?.stop(); await cluster?.stop(); });

interface Run { code: number; stdout: string; stderr: string }

function run(bin: string, args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(bin, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A buildctl Dockerfile build of `dir` on `addr` (buildkitd's socket or the endpoint), plain progress. */
function build(addr: string, dir: string, ...extra: string[]): Promise<Run> {
  return run(tools.paths.buildctl, ['--addr', addr, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`, '--progress', 'plain', ...extra]);
}

/** A build whose RUN writes something different on every run (a rerun would show). */
function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), [`FROM ${cluster.busybox.reference}`, `RUN echo ${name} && date +%s%N > /built`, ''].join('\n'));
  return dir;
}

/** The registry document at `ref`, as skopeo (an independent client) reads it. */
async function rawManifest(ref: string): Promise<{ mediaType: string; manifests?: Array<{ mediaType: string }> }> {
  const r = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { mediaType: string; manifests?: Array<{ mediaType: string }> };
}

/** The plain-progress block of the vertex named `name` (or the first whose name it matches): its lines, joined. */
function vertexBlock(stderr: string, name: string | RegExp): string {
  const id = [...stderr.matchAll(/^#(\d+) (.*)$/gm)].find((m) => (typeof name === 'string' ? m[2] === name : name.test(m[2])))?.[1];
  assert.ok(id, `a vertex "${name}":\n${stderr}`);
  return stderr.split('\n').filter((l) => l.startsWith(`#${id} `)).join('\n');
}

/**
 * The import's note that the records are another BuildKit's: a log line of its vertex. buildctl
 * v0.11 prints a log that arrives before its vertex's header as "#0" (fixed upstream in
 * ca944127c, "progressui: fix possible zero prefix numbers in logs"), so that prefix counts too.
 */
function assertForeignNoted(stderr: string, block: string): void {
  const id = /^#(\d+) /.exec(block)![1];
  assert.match(stderr, new RegExp(`^#(${id}|0) [\\d.]+ 0 Buildyard records; [1-9]\\d* records of another BuildKit skipped`, 'm'), stderr);
}

const runCached = (stderr: string): boolean => {
  const id = /^#(\d+) \[2\/2\] RUN /m.exec(stderr)?.[1];
  assert.ok(id, `the RUN step:\n${stderr}`);
  return new RegExp(`^#${id} CACHED$`, 'm').test(stderr);
};

test('buildkitd\'s registry cache imports into Buildyard: read without error, its records reported as another BuildKit\'s, the step runs', { skip }, async () => {
  const dir = project('from-buildkitd');
  const ref = `${cluster.registry.host}/interop/buildkitd:cache`;
  const exported = await build(buildkitd.addr, dir, '--export-cache', `type=registry,ref=${ref},mode=max`);
  assert.equal(exported.code, 0, exported.stderr);
  // buildkitd's document: what Buildyard parses is the real thing.
  const doc = await rawManifest(ref);
  assert.equal(doc.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(doc.manifests?.at(-1)?.mediaType, CACHE_CONFIG);

  const imported = await build(endpoint, dir, '--import-cache', `type=registry,ref=${ref}`);
  assert.equal(imported.code, 0, imported.stderr);
  const block = vertexBlock(imported.stderr, `importing cache manifest from ${ref}`);
  assert.match(block, /DONE/);
  assert.doesNotMatch(block, /ERROR/);
  assertForeignNoted(imported.stderr, block);
  assert.equal(runCached(imported.stderr), false, `BuildKit's keys are not Buildyard's: the RUN runs:\n${imported.stderr}`);
});

test('Buildyard\'s registry cache is BuildKit\'s document: buildkitd imports it without error; Buildyard reuses its own', { skip }, async () => {
  const dir = project('from-buildyard');
  const ref = `${cluster.registry.host}/interop/buildyard:cache`;
  const exported = await build(endpoint, dir, '--export-cache', `type=registry,ref=${ref},mode=max`);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(vertexBlock(exported.stderr, 'exporting cache to registry'), /DONE/);
  const doc = await rawManifest(ref);
  assert.equal(doc.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(doc.manifests?.at(-1)?.mediaType, CACHE_CONFIG);

  const byBuildkitd = await build(buildkitd.addr, dir, '--import-cache', `type=registry,ref=${ref}`);
  assert.equal(byBuildkitd.code, 0, byBuildkitd.stderr);
  const block = vertexBlock(byBuildkitd.stderr, `importing cache manifest from ${ref}`);
  assert.match(block, /DONE/);
  assert.doesNotMatch(block, /ERROR/);
  // The same check reports a cache buildkitd cannot read (so the one above can fail).
  const missing = `${cluster.registry.host}/interop/none:cache`;
  const bad = await build(buildkitd.addr, dir, '--import-cache', `type=registry,ref=${missing}`);
  assert.match(vertexBlock(bad.stderr, `importing cache manifest from ${missing}`), /ERROR/);

  // The endpoint reads its own document back (a fresh cluster that hits from it is buildkitCache.test.ts).
  const again = await build(endpoint, dir, '--import-cache', `type=registry,ref=${ref}`);
  assert.equal(again.code, 0, again.stderr);
  const own = vertexBlock(again.stderr, `importing cache manifest from ${ref}`);
  assert.match(own, /DONE/);
  assert.doesNotMatch(own, /ERROR|another BuildKit/);
  assert.equal(runCached(again.stderr), true, again.stderr);
});

test('local caches across implementations: buildkitd\'s directory imports into Buildyard (records reported as another BuildKit\'s) and Buildyard\'s into buildkitd, through the client\'s content store', { skip }, async () => {
  const dir = project('local-interop');
  const fromBuildkitd = join(work, 'local-buildkitd');
  const exported = await build(buildkitd.addr, dir, '--export-cache', `type=local,dest=${fromBuildkitd},mode=max`);
  assert.equal(exported.code, 0, exported.stderr);
  const imported = await build(endpoint, dir, '--import-cache', `type=local,src=${fromBuildkitd}`);
  assert.equal(imported.code, 0, imported.stderr);
  const block = vertexBlock(imported.stderr, `importing cache manifest from local:${fromBuildkitd}`);
  assert.match(block, /DONE/);
  assert.doesNotMatch(block, /ERROR/);
  assertForeignNoted(imported.stderr, block);

  const fromBuildyard = join(work, 'local-buildyard');
  const ours = await build(endpoint, dir, '--export-cache', `type=local,dest=${fromBuildyard},mode=max`);
  assert.equal(ours.code, 0, ours.stderr);
  const byBuildkitd = await build(buildkitd.addr, dir, '--import-cache', `type=local,src=${fromBuildyard}`);
  assert.equal(byBuildkitd.code, 0, byBuildkitd.stderr);
  // buildkitd names a local import by a hash of its options.
  const theirs = vertexBlock(byBuildkitd.stderr, /^importing cache manifest from local:/);
  assert.match(theirs, /DONE/);
  assert.doesNotMatch(theirs, /ERROR/);
});
