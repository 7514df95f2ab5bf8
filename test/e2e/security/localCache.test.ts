// Issue 14, item 4: "files on the frontend host". A local cache lives on the client: the CLI
// streams `--cache-to type=local,dest=DIR` back through the Solve stream and syncs
// `--cache-from type=local,src=DIR` like a context. A raw Solve naming a path on the builder
// (to write a cache there, or to read one from there) is refused, and nothing is written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { credentials, status, type ServiceError } from '@grpc/grpc-js';
import { encodeManifest, syncContext, walkContext } from '@buildyard/context';
import { ContextSyncClient } from '@buildyard/proto';
import { sha256Digest } from '@buildyard/oci';
import { startCluster, type Cluster, appCommand } from '@buildyard/testkit';
import { bearer, solve } from '../grpcClient.js';

let cluster: Cluster;
let work: string;
const nonce = `${process.pid}${Date.now()}`;

before(async () => {
  cluster = await startCluster({ workers: 1, tenants: ['alice', 'bob', 'carol'] });
  work = mkdtempSync(join(tmpdir(), 'buildyard-local-cache-'));
  mkdirSync(join(work, 'ctx'));
  writeFileSync(join(work, 'ctx/Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo RAN-$((40+2))-${nonce} && echo ${nonce} > /built\nRUN cat /built\n`);
});
after(async () => {
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

function cli(tenant: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, appCommand('cli', ...args), {
    cwd: work, encoding: 'utf8', timeout: 180_000,
    env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.tokens[tenant] },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const buildArgs = () => ({ platforms: ['linux/amd64'] });

test('the CLI exports a local cache into a client dir and another tenant\'s build imports it from there: every RUN is a cache hit', () => {
  const dir = join(work, 'cache');
  // An older export under another tag stays in the layout's index.
  const old = cli('alice', ['build', '--progress', 'plain', '--platform', 'linux/amd64', '--cache-to', `type=local,dest=${dir},tag=old`, join(work, 'ctx')]);
  assert.equal(old.status, 0, old.stderr);
  const exported = cli('alice', ['build', '--progress', 'plain', '--platform', 'linux/amd64', '--cache-to', `type=local,dest=${dir},mode=max`, join(work, 'ctx')]);
  assert.equal(exported.status, 0, exported.stderr);
  assert.deepEqual(execFileSync('umoci', ['ls', '--layout', dir], { encoding: 'utf8' }).trim().split('\n').sort(), ['latest', 'old'], 'a valid OCI layout holding both tags');

  // Bob has none of alice's cache records: only the import can make his RUN steps hits.
  const imported = cli('bob', ['build', '--progress', 'plain', '--platform', 'linux/amd64', '--cache-from', `type=local,src=${dir}`, join(work, 'ctx')]);
  assert.equal(imported.status, 0, imported.stderr);
  assert.equal((imported.stderr.match(/ CACHED$/gm) ?? []).length >= 2, true, `both RUN steps were cache hits:\n${imported.stderr}`);
  assert.doesNotMatch(imported.stderr, new RegExp(`RAN-42-${nonce}`), `no RUN executed:\n${imported.stderr}`);

  // (The marker is computed by the shell, so only a RUN that executes prints it.)
  // Without the import, the RUN runs: the hits above came from the client's directory.
  rmSync(join(work, 'ctx2'), { recursive: true, force: true });
  mkdirSync(join(work, 'ctx2'));
  writeFileSync(join(work, 'ctx2/Dockerfile'), readFileSync(join(work, 'ctx/Dockerfile'), 'utf8'));
  const carol = cli('carol', ['build', '--progress', 'plain', '--platform', 'linux/amd64', join(work, 'ctx2')]);
  assert.equal(carol.status, 0, carol.stderr);
  assert.match(carol.stderr, new RegExp(`RAN-42-${nonce}`));
});

test('a raw Solve naming a builder path for a local cache is refused with INVALID_ARGUMENT and writes nothing', async () => {
  const target = join(tmpdir(), `buildyard-evil-cache-${nonce}`);
  const dir = join(work, 'ctx');
  const refused = async (request: object) => {
    const err = await solve(cluster, dir, { ...buildArgs(), ...request }, { token: cluster.tokens.carol }).then(() => undefined, (e: ServiceError) => e);
    assert.ok(err, `the Solve ${JSON.stringify(request)} was accepted`);
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /never reads or writes its own files/);
    assert.doesNotMatch(err.details, /\n/);
  };
  await refused({ cacheTo: [{ type: 'local', attrs: { dest: target } }] });
  assert.equal(existsSync(target), false, 'nothing was written at the builder path');
  // A layout exists on this (the frontend's) host; the builder must not read it.
  const hostLayout = join(work, 'host-layout');
  mkdirSync(hostLayout, { recursive: true });
  writeFileSync(join(hostLayout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(hostLayout, 'index.json'), '{"schemaVersion":2,"manifests":[]}');
  await refused({ cacheFrom: [{ type: 'local', attrs: { src: hostLayout } }] });
  await refused({ cacheFrom: [{ type: 'local', attrs: { src: '/etc' } }] });
});

test('a local cache import naming a context another tenant synced is refused (a warning; the build runs without it)', async () => {
  // Bob syncs his cache dir for an import; carol learns its context id (a content address).
  const bobsDir = join(work, 'bob-layout');
  mkdirSync(bobsDir, { recursive: true });
  writeFileSync(join(bobsDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(bobsDir, 'index.json'), `{"schemaVersion":2,"manifests":[],"annotations":{"owner":"bob-${nonce}"}}`);
  const sync = new ContextSyncClient(cluster.address, credentials.createInsecure());
  try { await syncContext(sync, bobsDir, { metadata: bearer(cluster.tokens.bob), cacheDir: false }); } finally { sync.close(); }
  const bobsContext = sha256Digest(encodeManifest(await walkContext(bobsDir, { cacheDir: false })));
  const outcome = await solve(cluster, join(work, 'ctx'), { ...buildArgs(), cacheFrom: [{ type: 'local', attrs: { context: bobsContext } }] }, { token: cluster.tokens.carol });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.ok(outcome.events.some((e) => /cache import from type=local skipped: unknown context/.test(e.warning?.message ?? '')), 'a warning says the context is unknown');
});
