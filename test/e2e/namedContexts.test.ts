// Named contexts (buildx --build-context name=VALUE; BuildKit's context:NAME attributes): FROM,
// COPY --from and RUN --mount from= read a local directory, a docker-image:// reference or a git
// repository (fetched by the frontend from a server outside the cluster) instead of the image or
// stage of that name, through `buildyard build` and through buildctl and docker buildx on the
// BuildKit endpoint. A tenant cannot name another tenant's uploaded directory by its id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { referenceTools, startCluster, startGitServer, type Cluster, type GitServer } from '@buildyard/testkit';
import { solve } from './grpcClient.js';
import { runCli, runTool as run } from './runProcess.js';
import { startOutside, type Outside } from './security/outsideNetwork.js';
import { UrlServer } from './urlServerControl.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster and a network namespace)';
const tools = referenceTools('buildctl', 'docker-buildx');
const nonce = `${process.pid}-${Date.now()}`;

let outside: Outside;
let git: GitServer;
let cluster: Cluster;
let addr: string;
let work: string;
let repoUrl: string;

before(async () => {
  if (skip) return;
  outside = await startOutside();
  git = await startGitServer({ host: outside.web, netns: outside.ns });
  git.commit('lib', [{ files: { 'sub/lib.txt': `lib-${nonce}\n` } }]);
  repoUrl = `http://${outside.web}:${new URL(git.http).port}/lib.git#main:sub`;
  cluster = await startCluster({
    workers: 1, tenants: ['bob'],
    env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  addr = cluster.buildkit!;
  work = mkdtempSync(join(tmpdir(), 'buildyard-named-e2e-'));
  // The build context, and a second directory given as the named context "src".
  mkdirSync(join(work, 'app'));
  writeFileSync(join(work, 'app/Dockerfile'), [
    // "base" and "deps" are no images anywhere: only the named contexts make this build.
    'FROM base AS deps',
    'RUN echo this-stage-is-replaced && exit 1',
    'FROM base',
    'COPY --from=src hello.txt /hello.txt',
    'COPY --from=lib lib.txt /lib.txt',
    'COPY --from=deps dep.txt /dep.txt',
    'RUN --mount=from=src,target=/s cat /s/hello.txt /hello.txt /lib.txt /dep.txt && ls /s',
    '',
  ].join('\n'));
  mkdirSync(join(work, 'src'));
  writeFileSync(join(work, 'src/hello.txt'), `hello-${nonce}\n`);
  writeFileSync(join(work, 'src/secret.key'), 'IGNORED\n');
  writeFileSync(join(work, 'src/.dockerignore'), 'secret.key\n');
  mkdirSync(join(work, 'deps'));
  writeFileSync(join(work, 'deps/dep.txt'), `dep-${nonce}\n`);
});
after(async () => {
  await cluster?.stop();
  await git?.stop();
  await outside?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});



const cli = (args: string[]) => runCli(cluster, work, args);

function assertBuilt(stderr: string): void {
  for (const word of [`hello-${nonce}`, `lib-${nonce}`, `dep-${nonce}`]) assert.match(stderr, new RegExp(word), stderr);
  assert.doesNotMatch(stderr, /this-stage-is-replaced/);
  assert.doesNotMatch(stderr, /secret\.key/, 'the named directory\'s .dockerignore applies');
}

test('buildyard build --build-context: a directory, docker-image:// and a git URL; a context named like a stage replaces it', { skip, timeout: 300_000 }, async () => {
  const r = await cli(['build', '--progress', 'plain', '--no-cache',
    '--build-context', 'src=./src', '--build-context', `base=docker-image://${cluster.busybox.reference}`,
    '--build-context', `lib=${repoUrl}`, '--build-context', 'deps=deps', 'app']);
  assert.equal(r.status, 0, r.stderr);
  assertBuilt(r.stderr);
  const bad = await cli(['build', '--build-context', 'x=target:build', 'app']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--build-context "x=target:build": not supported by buildyard/);
});

test('--build-context NAME=http(s)://… (not git): the download itself, one file named context (0600, dated by Last-Modified), never unpacked; the egress policy refuses the cluster', { skip, timeout: 300_000 }, async () => {
  const server = await UrlServer.start(outside);
  try {
    await server.serve({ body: `payload-${nonce}`, lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT', contentDisposition: 'attachment; filename="other.txt"' });
    dockerfileDir('from-url', [`FROM ${cluster.busybox.reference}`, 'COPY --from=dl / /dl/', 'RUN ls /dl && stat -c "mode=%a mtime=%Y" /dl/context && cat /dl/context']);
    const r = await cli(['build', '--progress', 'plain', '--no-cache', '--build-context', `dl=${server.base}/files/archive.tar.gz`, 'from-url']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /#\d+ \d+\.\d+ context\n/);
    assert.match(r.stderr, /mode=600 mtime=1445412480/);
    assert.match(r.stderr, new RegExp(`payload-${nonce}`));
    assert.match(r.stderr, /\[context dl\] http:\/\/[\d.]+:8080\/files\/archive\.tar\.gz/);
    const refused = await cli(['build', '--build-context', 'dl=http://127.0.0.1:9/secret', 'from-url']);
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /context http:\/\/127\.0\.0\.1:9\/secret.*127\.0\.0\.1 is not reachable from builds/);
  } finally {
    server.stop();
  }
});

/** Writes `lines` as the Dockerfile of a fresh directory under work. */
function dockerfileDir(name: string, lines: string[]): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `${lines.join('\n')}\n`);
  return dir;
}

/** An image for two platforms written into an OCI layout directory (type=oci,tar=false) as base:v1. */
async function layoutImage(name: string): Promise<string> {
  dockerfileDir(`${name}-src`, [`FROM ${cluster.busybox.reference}`, 'ENV FROM_LAYOUT=inherited', `RUN echo layout-${nonce} > /in-layout`]);
  const built = await cli(['build', '-q', '--provenance=false', '--platform', 'linux/amd64,linux/arm64', '-o', `type=oci,dest=${join(work, name)},tar=false,name=base:v1`, `${name}-src`]);
  assert.equal(built.status, 0, built.stderr);
  return join(work, name);
}

test('buildyard build --build-context NAME=oci-layout://DIR:TAG: the image a tar=false output wrote replaces NAME on every platform, its config carried over; one platform\'s manifest serves any platform; unknown layouts and tags fail before any upload', { skip, timeout: 300_000 }, async () => {
  const layout = await layoutImage('layout');
  dockerfileDir('from-layout', ['FROM base', 'RUN cat /in-layout && echo "env=$FROM_LAYOUT" && echo "arch=$(uname -m)"']);
  const r = await cli(['build', '--progress', 'plain', '--no-cache', '--platform', 'linux/amd64,linux/arm64', '--build-context', 'base=oci-layout://layout:v1', 'from-layout']);
  assert.equal(r.status, 0, r.stderr);
  for (const line of [`layout-${nonce}`, 'env=inherited', 'arch=x86_64', 'arch=aarch64']) assert.match(r.stderr, new RegExp(line), r.stderr);
  assert.match(r.stderr, /\[context base\] load metadata for docker\.io\/library\/base@sha256:[a-f0-9]{64}/, 'named as BuildKit names it');
  // A manifest, not an index, is that image whatever the platform, as BuildKit reads a layout
  // (containerd's images.Manifest): its amd64 files run in the arm64 build.
  const { digest: top } = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0];
  const amd64 = (JSON.parse(readFileSync(join(layout, 'blobs/sha256', top.slice(7)), 'utf8')).manifests as Array<{ digest: string; platform?: { architecture: string } }>).find((m) => m.platform?.architecture === 'amd64')!.digest;
  const single = await cli(['build', '--progress', 'plain', '--no-cache', '--platform', 'linux/arm64', '--build-context', `base=oci-layout://layout@${amd64}`, 'from-layout']);
  assert.equal(single.status, 0, single.stderr);
  for (const line of [`layout-${nonce}`, 'arch=x86_64']) assert.match(single.stderr, new RegExp(line), single.stderr);
  const missing = await cli(['build', '--build-context', 'base=oci-layout://nowhere', 'from-layout']);
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /--build-context "base=oci-layout:\/\/nowhere": no OCI layout at .*nowhere \(ENOENT\)/);
  const digest = `sha256:${'e'.repeat(64)}`;
  const absent = await cli(['build', '--build-context', `base=oci-layout://layout@${digest}`, 'from-layout']);
  assert.equal(absent.status, 1, absent.stderr);
  assert.match(absent.stderr, new RegExp(`the OCI layout of docker\\.io/library/base: its image ${digest} is not in blobs/sha256`));
});

test('an oci-layout context reads only what its own layout holds: not another tenant\'s layout, not a digest only the shared store has, not a blob whose bytes are not its name, never a FROM oci-layout:// of the Dockerfile\'s own', { skip, timeout: 300_000 }, async () => {
  const layout = await layoutImage('layout-attacked');
  const { digest } = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0];
  const app = dockerfileDir('layout-app', ['FROM base', 'RUN cat /in-layout']);
  // bob names default's synced layout by its context id.
  const theirs = await solve(cluster, app, { platforms: ['linux/amd64'], namedContexts: { base: `oci-layout://local:${await contextIdOf(layout)}@${digest}` } }, { token: cluster.tokens.bob });
  assert.match(theirs.error?.message ?? '', /--build-context base=oci-layout:\/\/local:sha256:[a-f0-9]{64}@sha256:[a-f0-9]{64}: unknown context; sync the layout directory first/);
  assert.doesNotMatch(theirs.logs, new RegExp(`layout-${nonce}`));
  // A layout of its own naming busybox's manifest, which builds have put in the shared store.
  const bare = join(work, 'bare-layout');
  mkdirSync(bare);
  writeFileSync(join(bare, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
  const busybox = cluster.busybox.manifests['linux/amd64']!;
  const stored = await solve(cluster, app, { platforms: ['linux/amd64'], namedContexts: { base: `oci-layout://local:${await contextIdOf(bare)}@${busybox}` } });
  assert.match(stored.error?.message ?? '', new RegExp(`its image ${busybox} is not in blobs/sha256`));
  // A layer replaced by other bytes under its name.
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs/sha256', JSON.parse(readFileSync(join(layout, 'blobs/sha256', digest.slice(7)), 'utf8')).manifests[0].digest.slice(7)), 'utf8'));
  const layer = join(layout, 'blobs/sha256', manifest.layers.at(-1).digest.slice(7));
  rmSync(layer);
  writeFileSync(layer, 'not the layer');
  const forged = await cli(['build', '--platform', 'linux/amd64', '--build-context', 'base=oci-layout://layout-attacked:v1', 'layout-app']);
  assert.equal(forged.status, 1, forged.stderr);
  assert.match(forged.stderr, /its layer sha256:[a-f0-9]{64} is not in blobs\/sha256 \(or does not match its name\)/);
  // The reference a layout context resolves to, written in a FROM without the context: a registry reference, which it is not.
  const direct = dockerfileDir('layout-direct', [`FROM oci-layout://docker.io/library/base@${digest}`, 'RUN cat /in-layout']);
  const viaFrom = await cli(['build', direct]);
  assert.equal(viaFrom.status, 1, viaFrom.stderr);
  assert.match(viaFrom.stderr, /invalid image reference "oci-layout:\/\/docker\.io\/library\/base@sha256:[a-f0-9]{64}"/);
  assert.doesNotMatch(viaFrom.stderr, new RegExp(`layout-${nonce}`));
});

test('buildctl --opt context:NAME=local:NAME and docker buildx --build-context through the BuildKit endpoint', { skip: skip || tools.missing || false, timeout: 300_000 }, async () => {
  const viaBuildctl = await run(tools.paths.buildctl!, ['--addr', addr, 'build', '--progress', 'plain', '--no-cache', '--frontend', 'dockerfile.v0',
    '--local', `context=${join(work, 'app')}`, '--local', `dockerfile=${join(work, 'app')}`, '--local', `src=${join(work, 'src')}`, '--local', `deps=${join(work, 'deps')}`,
    '--opt', 'context:src=local:src', '--opt', 'context:deps=local:deps', '--opt', `context:base=docker-image://${cluster.busybox.reference}`, '--opt', `context:lib=${repoUrl}`]);
  assert.equal(viaBuildctl.status, 0, viaBuildctl.stderr);
  assertBuilt(viaBuildctl.stderr);
  const env = { ...process.env, BUILDX_CONFIG: join(work, 'buildx') };
  const created = await run(tools.paths['docker-buildx']!, ['create', '--name', 'named', '--driver', 'remote', addr], env);
  assert.equal(created.status, 0, created.stderr);
  const viaBuildx = await run(tools.paths['docker-buildx']!, ['--builder', 'named', 'build', '--progress', 'plain', '--no-cache',
    '--build-context', `src=${join(work, 'src')}`, '--build-context', `deps=${join(work, 'deps')}`, '--build-context', `base=docker-image://${cluster.busybox.reference}`,
    '--build-context', `lib=${repoUrl}`, join(work, 'app')], env);
  assert.equal(viaBuildx.status, 0, viaBuildx.stderr);
  assertBuilt(viaBuildx.stderr);
});

test('docker buildx --build-context NAME=oci-layout://DIR:TAG through the BuildKit endpoint: the image is read from buildx\'s content store over the session', { skip: skip || tools.missing || false, timeout: 300_000 }, async () => {
  const layout = await layoutImage('layout-buildx');
  dockerfileDir('from-layout-buildx', ['FROM base', 'RUN cat /in-layout && echo "env=$FROM_LAYOUT" && echo "arch=$(uname -m)"']);
  const env = { ...process.env, BUILDX_CONFIG: join(work, 'buildx-layout') };
  const created = await run(tools.paths['docker-buildx']!, ['create', '--name', 'layout', '--driver', 'remote', addr], env);
  assert.equal(created.status, 0, created.stderr);
  const built = await run(tools.paths['docker-buildx']!, ['--builder', 'layout', 'build', '--progress', 'plain', '--no-cache', '--platform', 'linux/amd64,linux/arm64',
    '--build-context', `base=oci-layout://${layout}:v1`, join(work, 'from-layout-buildx')], env);
  assert.equal(built.status, 0, built.stderr);
  for (const line of [`layout-${nonce}`, 'env=inherited', 'arch=x86_64', 'arch=aarch64']) assert.match(built.stderr, new RegExp(line), built.stderr);
  assert.match(built.stderr, /\[context base\] load from client/);
});

test('a named context cannot be another tenant\'s uploaded directory', { skip, timeout: 300_000 }, async () => {
  // default uploads ./src; bob names that context id.
  const contextId = await contextIdOf(join(work, 'src'));
  const stolen = await solve(cluster, join(work, 'deps'), {
    dockerfile: Buffer.from(`FROM ${cluster.busybox.reference}\nCOPY --from=theirs hello.txt /h\nRUN cat /h\n`), platforms: ['linux/amd64'],
    namedContexts: { theirs: `local:${contextId}` },
  }, { token: cluster.tokens.bob });
  assert.ok(stolen.error, 'bob\'s build fails');
  assert.match(stolen.error.message, /--build-context theirs=local:sha256:[a-f0-9]{64}: unknown context; sync the directory first/);
  assert.doesNotMatch(stolen.logs, new RegExp(`hello-${nonce}`));
});

/** The context id a sync of `dir` gives (the manifest digest, the same for every tenant). */
async function contextIdOf(dir: string): Promise<string> {
  const { syncContext } = await import('@buildyard/context');
  const { ContextSyncClient } = await import('@buildyard/proto');
  const { credentials } = await import('@grpc/grpc-js');
  const { bearer } = await import('./grpcClient.js');
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  try {
    return (await syncContext(client, dir, { metadata: bearer(cluster.token), cacheDir: false })).contextId;
  } finally {
    client.close();
  }
}
