// Issue 17 acceptance: BuildKit's own client (buildctl v0.11.6, ../shared/tools) builds on a
// real cluster (1 frontend, 2 workers) through the BuildKit-compatible endpoint.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { credentials } from '@grpc/grpc-js';
import { AttachRequest, ControlClient, StatusRequest, type SolveEvent, type StatusResponse } from '@buildyard/proto';
import { referenceTools, startCluster, startRegistry, until, type Cluster, type RegistryService } from '@buildyard/testkit';
import { bearer } from './grpcClient.js';

const repo = resolve(import.meta.dirname, '../..');
const example = join(repo, 'examples/multi-stage');
const tools = referenceTools('buildctl', 'docker-buildx');
const buildctlBin = tools.paths.buildctl;
// Without BuildKit's reference clients there is nothing to drive the endpoint with.
const skip = tools.missing ?? false;
let cluster: Cluster;
let addr: string;
let work: string;
/** A registry that needs this login; builds may use it (trusted). */
const pusher = { user: 'pusher', password: `pw-${process.pid}` };
let authRegistry: RegistryService | undefined;

before(async () => {
  if (skip) return;
  authRegistry = await startRegistry({ login: pusher });
  // One stage per worker at a time, so the two middle stages must go to different workers.
  cluster = await startCluster({
    workers: 2,
    trustRegistries: [authRegistry.host],
    env: {
      BUILDYARD_WORKER_CAPACITY: '1', BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default',
      // The endpoint's tenant may use the host network (with --allow), not security.insecure.
      BUILDYARD_ENTITLEMENTS: 'default:network.host',
    },
  });
  addr = cluster.buildkit!;
  work = mkdtempSync(join(tmpdir(), 'buildyard-buildkit-'));
});
after(async () => {
  await cluster?.stop();
  await authRegistry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run { code: number; stdout: string; stderr: string }

function buildctl(...args: string[]): Promise<Run> {
  return buildctlWith(process.env, ...args);
}

function buildctlWith(env: NodeJS.ProcessEnv, ...args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(buildctlBin, ['--addr', addr, ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function skopeo(...args: string[]): Promise<string> {
  return new Promise((resolveRun, reject) => execFile('skopeo', args, (err, stdout, stderr) => (err ? reject(new Error(`skopeo ${args.join(' ')}: ${stderr}`)) : resolveRun(stdout))));
}

/** The tenant's newest build and its whole event history, from Buildyard's own API. */
async function latestBuildEvents(): Promise<SolveEvent[]> {
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const status = await new Promise<StatusResponse>((res, rej) => control.status(StatusRequest.fromPartial({ limit: 1 }), bearer(cluster.token), (err, r) => (err ? rej(err) : res(r))));
    const events: SolveEvent[] = [];
    for await (const e of control.attach(AttachRequest.fromPartial({ buildId: status.builds[0].buildId, fromStart: true }), bearer(cluster.token))) events.push(e as SolveEvent);
    return events;
  } finally {
    control.close();
  }
}

/** The export as buildkitd's image exporter reports it: one vertex, a status per phase, in order, DONE. */
function assertExportProgress(stderr: string, image: string, multiPlatform: boolean): void {
  const vertex = /^#(\d+) exporting to image$/m.exec(stderr)?.[1];
  assert.ok(vertex, `an "exporting to image" vertex:\n${stderr}`);
  const lines = stderr.split('\n').filter((l) => l.startsWith(`#${vertex} `)).map((l) => l.slice(vertex.length + 2));
  const phases = [
    /^exporting layers( [\d.]+s)? done$/,
    /^exporting manifest sha256:[a-f0-9]{64}( [\d.]+s)? done$/,
    /^exporting config sha256:[a-f0-9]{64}( [\d.]+s)? done$/,
    ...(multiPlatform ? [/^exporting manifest list sha256:[a-f0-9]{64}( [\d.]+s)? done$/] : []),
    /^pushing layers( [\d.]+s)? done$/,
    new RegExp(`^pushing manifest for ${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}@sha256:[a-f0-9]{64}( [\\d.]+s)? done$`),
    /^DONE [\d.]+s$/,
  ];
  let at = 0;
  for (const phase of phases) {
    const found = lines.findIndex((l, i) => i >= at && phase.test(l));
    assert.ok(found >= 0, `export phase ${phase} after line ${at} of vertex #${vertex}:\n${lines.join('\n')}`);
    at = found + 1;
  }
}

test('buildctl debug workers lists one entry per fleet worker with its platforms', { skip }, async () => {
  const run = await buildctl('debug', 'workers', '-v');
  assert.equal(run.code, 0, run.stderr);
  for (const w of cluster.workers) assert.ok(run.stdout.includes(w.id), `worker ${w.id} listed:\n${run.stdout}`);
  assert.match(run.stdout, /linux\/amd64/);
  assert.match(run.stdout, /linux\/arm64/);
});

test('buildctl builds examples/multi-stage for two platforms and pushes an index skopeo reads; the middle stages ran on both workers', { skip }, async () => {
  const image = `${cluster.registry.host}/buildkit/app:1`;
  const run = await buildctl('build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${example}`, '--local', `dockerfile=${example}`,
    '--opt', 'platform=linux/amd64,linux/arm64', '--opt', `build-arg:BASE=${cluster.busybox.reference}`, '--opt', 'no-cache=',
    '--output', `type=image,name=${image},push=true,registry.insecure=true`);
  assert.equal(run.code, 0, run.stderr);
  // Progress as against buildkitd: numbered steps with their platform, DONE lines, the internal loads.
  assert.match(run.stderr, /\[internal\] load build definition from Dockerfile/);
  assert.match(run.stderr, /\[internal\] load build context/);
  assert.match(run.stderr, /\[linux\/arm64 client 3\/3\] RUN sh common\/build\.sh client \/out\/client/);
  assert.match(run.stderr, /#\d+ DONE \d+\.\d+s/);
  const index = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${image}`)) as { manifests: Array<{ platform: { architecture: string } }> };
  assert.deepEqual(index.manifests.map((m) => m.platform.architecture).sort(), ['amd64', 'arm64']);
  assertExportProgress(run.stderr, image, true);

  const events = await latestBuildEvents();
  const workersOf = (stage: string, platform: string) => new Set(events.map((e) => e.vertex).filter((v) => v && v.stage === stage && v.platform === platform && !v.cached && v.workerId).map((v) => v!.workerId));
  const middle = ['linux/amd64', 'linux/arm64'].flatMap((platform) => [workersOf('client', platform), workersOf('server', platform)]);
  for (const workers of middle) assert.equal(workers.size, 1, 'one worker ran each middle stage');
  // Four middle stages (client and server for two platforms) on two workers of two slots each:
  // the fleet spreads them, so both workers ran some (which pairs share a worker is placement's choice).
  assert.equal(new Set(middle.flatMap((w) => [...w])).size, 2, 'the middle stages ran on both workers');
});

test('a second identical build sends no unchanged file and runs no RUN', { skip }, async () => {
  const context = join(work, 'again');
  cpSync(example, context, { recursive: true });
  const args = ['build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${context}`, '--local', `dockerfile=${context}`,
    '--opt', `build-arg:BASE=${cluster.busybox.reference}`, '--opt', 'platform=linux/amd64'];
  const first = await buildctl(...args);
  assert.equal(first.code, 0, first.stderr);
  const second = await buildctl(...args);
  assert.equal(second.code, 0, second.stderr);
  assert.match(first.stderr, /transferring context: \d+(\.\d+)?k?B (\d+\.\d+s )?done/, 'the first build sends the context');
  // buildctl prints a byte count only when content moved, and the time only when it was measurable.
  assert.match(second.stderr, /transferring context: (\d+\.\d+s )?done/, 'the second build syncs its context');
  assert.doesNotMatch(second.stderr, /transferring context: \d+(\.\d+)?k?B/, 'the second build sends no file content');
  const runSteps = second.stderr.split('\n').filter((l) => /^#\d+ \[.*\] RUN /.test(l)).map((l) => l.split(' ')[0]);
  assert.ok(runSteps.length >= 3, second.stderr);
  for (const step of new Set(runSteps)) assert.ok(second.stderr.includes(`${step} CACHED`), `${step} was cached:\n${second.stderr}`);
});

test('what the endpoint does not support fails at once with one clear line', { skip }, async () => {
  const gateway = await buildctl('build', '--frontend', 'gateway.v0', '--opt', 'source=docker/dockerfile:1.5', '--local', `context=${example}`, '--local', `dockerfile=${example}`);
  assert.notEqual(gateway.code, 0);
  assert.match(gateway.stderr, /frontend "gateway\.v0" is not supported/);

  const syntax = join(work, 'syntax');
  cpSync(example, syntax, { recursive: true });
  writeFileSync(join(syntax, 'Dockerfile'), '# syntax=example.com/my/frontend:1\nFROM busybox\n');
  const directive = await buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${syntax}`, '--local', `dockerfile=${syntax}`);
  assert.notEqual(directive.code, 0);
  assert.match(directive.stderr, /# syntax=example\.com\/my\/frontend:1: frontend images are not supported/);
});

/** docker-buildx with its config kept in this suite's work dir. */
function buildx(...args: string[]): Promise<Run> {
  const env = { ...process.env, BUILDX_CONFIG: join(work, 'buildx') };
  return new Promise<Run>((resolveRun) => {
    execFile(tools.paths['docker-buildx'], args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A remote-driver builder for the endpoint, named for the test that uses it (tests run alone, in any order). */
async function remoteBuilder(name: string): Promise<void> {
  const created = await buildx('create', '--name', name, '--driver', 'remote', addr);
  assert.equal(created.code, 0, created.stderr);
}

test('docker buildx with the remote driver: inspect --bootstrap lists amd64 and arm64; build --push for two platforms', { skip }, async () => {
  await remoteBuilder('buildyard');
  const inspect = await buildx('--builder', 'buildyard', 'inspect', '--bootstrap');
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /Status:\s+running/);
  assert.match(inspect.stdout, /Platforms:.*linux\/amd64/);
  assert.match(inspect.stdout, /Platforms:.*linux\/arm64/);

  const image = `${cluster.registry.host}/buildx/app:1`;
  const build = await buildx('--builder', 'buildyard', 'build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64',
    '--build-arg', `BASE=${cluster.busybox.reference}`, '-t', image, '--push', example);
  assert.equal(build.code, 0, build.stderr);
  assert.match(build.stderr, /\[linux\/amd64 server 3\/3\] RUN sh common\/build\.sh server \/out\/server/);
  assertExportProgress(build.stderr, image, true);
  const index = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', `docker://${image}`)) as { manifests: Array<{ platform: { architecture: string } }> };
  // buildx's default provenance (mode=min, as against buildkitd): one attestation manifest per image.
  assert.deepEqual(index.manifests.map((m) => m.platform.architecture).sort(), ['amd64', 'arm64', 'unknown', 'unknown']);
});

test('buildx --add-host, --shm-size and --ulimit reach RUN steps (the add-hosts, shm-size and ulimit attributes)', { skip }, async () => {
  await remoteBuilder('buildyard-run-options');
  const dir = join(work, 'run-options');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo "hosts=$(grep -c cache.internal /etc/hosts) shm=$(df -k /dev/shm | tail -1 | awk '{print $2}') nofile=$(ulimit -n)/$(ulimit -Hn)"\n`);
  const run = await buildx('--builder', 'buildyard-run-options', 'build', '--progress', 'plain', '--no-cache',
    '--add-host', 'cache.internal:10.1.2.3', '--shm-size', '256m', '--ulimit', 'nofile=512:1024', dir);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /hosts=1 shm=262144 nofile=512\/1024/);
});

test('buildctl du lists the cache records and worker disks; prune removes them and lists what it removed', { skip }, async () => {
  const du = await buildctl('du', '-v');
  assert.equal(du.code, 0, du.stderr);
  assert.match(du.stdout, /Description:\s+worker /);
  assert.match(du.stdout, /Total:\s+\d/);
  const prune = await buildctl('prune');
  assert.equal(prune.code, 0, prune.stderr);
  assert.match(prune.stdout, /Total:\s+\d/);
  const after = await buildctl('du');
  assert.equal(after.code, 0, after.stderr);
  assert.doesNotMatch(after.stdout, /^sha256:/m, 'no cache record is left after prune');
});

test('a failing step fails the build with its error, as buildkitd reports it; SIGINT to buildctl cancels the build on the fleet', { skip }, async () => {
  const dir = join(work, 'failing');
  cpSync(example, dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo hello && exit 3\n`);
  const failed = await buildctl('build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`);
  assert.notEqual(failed.code, 0);
  // As from buildkitd: the step's ERROR line, its log block, the final error.
  const step = /#(\d+) \[2\/2\] RUN echo hello && exit 3\n/.exec(failed.stderr)?.[1];
  assert.ok(step, failed.stderr);
  assert.match(failed.stderr, new RegExp(`\\n#${step} ERROR: process "/bin/sh -c echo hello && exit 3" did not complete successfully: exit code: 3\\n`));
  assert.match(failed.stderr, / > \[2\/2\] RUN echo hello && exit 3:\n#\d+ [\d.]+ hello/);
  assert.match(failed.stderr, /error: failed to solve: process "\/bin\/sh -c echo hello && exit 3" did not complete successfully: exit code: 3/);

  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo started-${Date.now()} && sleep 600\n`);
  const child = spawn(buildctlBin, ['--addr', addr, 'build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`]);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  await until('the RUN step to start', () => /started-\d+/.test(stderr), 120_000);
  child.kill('SIGINT');
  await exited;
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    await until('the build to be cancelled on the fleet', async () => {
      const res = await new Promise<StatusResponse>((ok, fail) => control.status(StatusRequest.fromPartial({ limit: 1 }), bearer(cluster.token), (err, r) => (err ? fail(err) : ok(r))));
      return res.builds[0]?.status === 'cancelled';
    }, 60_000, 200);
  } finally {
    control.close();
  }
});

test('tar and oci outputs come back over the session into the client\'s dest files', { skip }, async () => {
  const base = ['build', '--frontend', 'dockerfile.v0', '--local', `context=${example}`, '--local', `dockerfile=${example}`,
    '--opt', 'platform=linux/amd64', '--opt', `build-arg:BASE=${cluster.busybox.reference}`];
  const tarFile = join(work, 'fs.tar');
  const tar = await buildctl(...base, '--output', `type=tar,dest=${tarFile}`);
  assert.equal(tar.code, 0, tar.stderr);
  const listing = await new Promise<string>((res, rej) => execFile('tar', ['-tf', tarFile], (err, out) => (err ? rej(err) : res(out))));
  assert.match(listing, /^usr\/local\/bin\/server$/m);
  assert.match(listing, /^etc\/build-info$/m);
  const ociFile = join(work, 'image.oci.tar');
  const oci = await buildctl(...base, '--progress', 'plain', '--output', `type=oci,dest=${ociFile}`);
  assert.equal(oci.code, 0, oci.stderr);
  const ociVertex = /^#(\d+) exporting to oci image format$/m.exec(oci.stderr)?.[1];
  assert.ok(ociVertex, oci.stderr);
  assert.match(oci.stderr, new RegExp(`^#${ociVertex} exporting manifest sha256:[a-f0-9]{64}( [\\d.]+s)? done$`, 'm'));
  assert.match(oci.stderr, new RegExp(`^#${ociVertex} sending tarball( [\\d.]+s)? done$`, 'm'));
  assert.match(oci.stderr, new RegExp(`^#${ociVertex} DONE`, 'm'));
  const ociListing = await new Promise<string>((res, rej) => execFile('tar', ['-tf', ociFile], (err, out) => (err ? rej(err) : res(out))));
  assert.match(ociListing, /^oci-layout$/m);
  assert.match(ociListing, /^index\.json$/m);

  // tar=false: the blobs go into buildctl's "export" content store (its dest directory), and
  // buildctl writes index.json from the answered descriptor, stamped as buildkitd stamps it.
  const layout = join(work, 'image-layout');
  const dir = await buildctl(...base, '--progress', 'plain', '--output', `type=oci,dest=${layout},tar=false,name=e2e/layout:1`);
  assert.equal(dir.code, 0, dir.stderr);
  assert.doesNotMatch(dir.stderr, /sending tarball/);
  const [entry] = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests;
  assert.equal(entry.annotations['org.opencontainers.image.ref.name'], 'e2e/layout:1'); // v0.11.6's buildctl: the whole name
  assert.match(entry.annotations['org.opencontainers.image.created'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const manifest = JSON.parse(readFileSync(join(layout, 'blobs/sha256', entry.digest.slice(7)), 'utf8'));
  for (const blob of [entry, manifest.config, ...manifest.layers]) {
    const bytes = readFileSync(join(layout, 'blobs/sha256', blob.digest.slice(7)));
    assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, blob.digest);
  }
});

test('COPY from a context fsutil sent keeps the client\'s file and directory mtimes (Stat.ModTime) in type=tar and type=local, as buildkitd does', { skip }, async () => {
  const ctx = join(work, 'mtime-ctx');
  mkdirSync(join(ctx, 'tree/sub'), { recursive: true });
  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nCOPY old.txt /old.txt\nCOPY tree /tree\n`);
  writeFileSync(join(ctx, 'old.txt'), 'old\n');
  writeFileSync(join(ctx, 'tree/sub/deep.txt'), 'deep\n');
  utimesSync(join(ctx, 'old.txt'), 1_000_000_000, 1_000_000_000);
  utimesSync(join(ctx, 'tree/sub/deep.txt'), 1_111_111_111, 1_111_111_111);
  utimesSync(join(ctx, 'tree/sub'), 1_222_222_222, 1_222_222_222);
  utimesSync(join(ctx, 'tree'), 1_333_333_333, 1_333_333_333);
  const tarFile = join(work, 'mtime.tar');
  const run = await buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${ctx}`, '--local', `dockerfile=${ctx}`, '--output', `type=tar,dest=${tarFile}`);
  assert.equal(run.code, 0, run.stderr);
  // What buildkitd v0.11.6 gives for the same context (its type=tar output, read the same way).
  const listing = await new Promise<string>((res, rej) => execFile('tar', ['-tvf', tarFile, '--full-time', '--no-recursion', 'old.txt', 'tree/', 'tree/sub/deep.txt', 'tree/sub/'], { env: { ...process.env, TZ: 'UTC' } }, (err, out) => (err ? rej(err) : res(out))));
  const times = Object.fromEntries(listing.trim().split('\n').map((l) => { const m = / (\S+ \S+) (\S+?)\/?$/.exec(l)!; return [m[2], m[1]]; }));
  assert.deepEqual(times, { 'old.txt': '2001-09-09 01:46:40', 'tree': '2012-04-02 02:22:13', 'tree/sub': '2008-09-24 02:10:22', 'tree/sub/deep.txt': '2005-03-18 01:58:31' });

  // type=local: every entry goes with its Stat.ModTime and buildctl's fsutil sets it (directories
  // once all is written); with SOURCE_DATE_EPOCH every entry has the epoch (exporter/local/fs.go).
  const mtimes = (dir: string) => Object.fromEntries(['old.txt', 'tree', 'tree/sub', 'tree/sub/deep.txt'].map((p) => [p, statSync(join(dir, p)).mtimeMs / 1000]));
  const local = join(work, 'mtime-local');
  const kept = await buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${ctx}`, '--local', `dockerfile=${ctx}`, '--output', `type=local,dest=${local}`);
  assert.equal(kept.code, 0, kept.stderr);
  assert.deepEqual(mtimes(local), { 'old.txt': 1_000_000_000, 'tree': 1_333_333_333, 'tree/sub': 1_222_222_222, 'tree/sub/deep.txt': 1_111_111_111 });
  const pinned = join(work, 'mtime-epoch');
  const epoch = await buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${ctx}`, '--local', `dockerfile=${ctx}`, '--opt', 'build-arg:SOURCE_DATE_EPOCH=1700000000', '--output', `type=local,dest=${pinned}`);
  assert.equal(epoch.code, 0, epoch.stderr);
  assert.deepEqual(mtimes(pinned), { 'old.txt': 1_700_000_000, 'tree': 1_700_000_000, 'tree/sub': 1_700_000_000, 'tree/sub/deep.txt': 1_700_000_000 });
});

test('type=local keeps hardlinks linked, as buildkitd\'s fsutil sender: the first name in walk order carries the content', { skip }, async () => {
  const dir = join(work, 'hardlinks');
  mkdirSync(dir);
  // In byte order x-y comes before x/y, in fsutil's walk order after it: buildctl links a name
  // only to one it has received, so the content must go with x/y.
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference} AS b\nRUN mkdir -p /o/x && echo shared > /o/x-y && ln /o/x-y /o/x/y && ln /o/x-y /o/z\nFROM scratch\nCOPY --from=b /o /\n`);
  const dest = join(work, 'hardlinks-out');
  const run = await buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`, '--output', `type=local,dest=${dest}`);
  assert.equal(run.code, 0, run.stderr);
  const names = ['x/y', 'x-y', 'z'].map((p) => statSync(join(dest, p)));
  assert.deepEqual(names.map((st) => [st.ino, st.nlink]), names.map(() => [names[0].ino, 3]));
  assert.equal(readFileSync(join(dest, 'z'), 'utf8'), 'shared\n');
});

test('type=local writes one folder per platform into the client\'s dest', { skip }, async () => {
  const dest = join(work, 'local-out');
  const run = await buildctl('build', '--frontend', 'dockerfile.v0', '--local', `context=${example}`, '--local', `dockerfile=${example}`,
    '--opt', 'platform=linux/amd64,linux/arm64', '--opt', `build-arg:BASE=${cluster.busybox.reference}`, '--output', `type=local,dest=${dest}`);
  assert.equal(run.code, 0, run.stderr);
  for (const [dir, arch] of [['linux_amd64', 'x86_64'], ['linux_arm64', 'aarch64']]) {
    assert.match(readFileSync(join(dest, dir, 'etc/build-info'), 'utf8'), new RegExp(`built for ${arch}`));
    assert.ok(statSync(join(dest, dir, 'usr/local/bin/server')).mode & 0o111, `${dir}: the server binary is executable`);
  }
});

test('buildctl --secret: RUN --mount=type=secret reads the value from the client\'s session', { skip }, async () => {
  const dir = join(work, 'secret');
  cpSync(example, dir, { recursive: true });
  const value = `s3cret-${Date.now()}`;
  writeFileSync(join(work, 'secret.txt'), value);
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN --mount=type=secret,id=mysecret test "$(cat /run/secrets/mysecret)" = "${value}" && echo secret-matched\n`);
  const run = await buildctl('build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
    '--secret', `id=mysecret,src=${join(work, 'secret.txt')}`);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /secret-matched/);
});

test('buildctl and buildx --allow network.host reach the host network for a tenant granted it; without --allow, or asking for an entitlement not granted, fails in BuildKit\'s words', { skip }, async () => {
  // Only a RUN in the host's network namespace reaches this loopback server.
  const token = `host-net-${Date.now()}`;
  const server = createServer((_req, res) => res.end(token));
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const dir = join(work, 'hostnet');
    cpSync(example, dir, { recursive: true });
    const { port } = server.address() as AddressInfo;
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN --network=host echo "got $(wget -qO- http://127.0.0.1:${port}/)"\n`);
    const base = ['build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`, '--opt', 'no-cache='];

    const allowed = await buildctl(...base, '--allow', 'network.host');
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.match(allowed.stderr, new RegExp(`got ${token}`));

    const notAsked = await buildctl(...base);
    assert.notEqual(notAsked.code, 0);
    assert.match(notAsked.stderr, /error: failed to solve: .*network\.host is not allowed/);

    // buildctl takes one entitlement per --allow (buildx also splits a comma list).
    const notGranted = await buildctl(...base, '--allow', 'network.host', '--allow', 'security.insecure');
    assert.notEqual(notGranted.code, 0);
    assert.match(notGranted.stderr, /error: failed to solve: granting entitlement security\.insecure is not allowed by build daemon configuration/);

    await remoteBuilder('buildyard-allow');
    const viaBuildx = await buildx('--builder', 'buildyard-allow', 'build', '--progress', 'plain', '--no-cache', '--allow', 'network.host', dir);
    assert.equal(viaBuildx.code, 0, viaBuildx.stderr);
    assert.match(viaBuildx.stderr, new RegExp(`got ${token}`));
    const buildxDenied = await buildx('--builder', 'buildyard-allow', 'build', '--progress', 'plain', '--allow', 'security.insecure,network.host', dir);
    assert.notEqual(buildxDenied.code, 0);
    assert.match(buildxDenied.stderr, /granting entitlement security\.insecure is not allowed by build daemon configuration/);
  } finally {
    server.close();
  }
});

test('a push to a registry that needs a login uses the credentials of the client\'s docker config, through the session\'s Auth service', { skip }, async () => {
  const dir = join(work, 'auth-registry');
  mkdirSync(dir, { recursive: true });
  const { user, password } = pusher;
  const host = authRegistry!.host;
  const image = `${host}/private/app:1`;
  const build = ['build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${example}`, '--local', `dockerfile=${example}`,
    '--opt', 'platform=linux/amd64', '--opt', `build-arg:BASE=${cluster.busybox.reference}`, '--output', `type=image,name=${image},push=true,registry.insecure=true`];
  // A docker config with no login for it: the push is refused.
  const anonymousConfig = join(dir, 'anonymous');
  mkdirSync(anonymousConfig);
  writeFileSync(join(anonymousConfig, 'config.json'), '{"auths":{}}');
  const anonymous = await buildctlWith({ ...process.env, DOCKER_CONFIG: anonymousConfig }, ...build);
  assert.notEqual(anonymous.code, 0, 'the registry refuses an anonymous push');
  assert.match(anonymous.stderr, /401|unauthorized|authentication required/i);

  const loggedIn = join(dir, 'logged-in');
  mkdirSync(loggedIn);
  writeFileSync(join(loggedIn, 'config.json'), JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } }));
  const pushed = await buildctlWith({ ...process.env, DOCKER_CONFIG: loggedIn }, ...build);
  assert.equal(pushed.code, 0, pushed.stderr);
  const manifest = JSON.parse(await skopeo('inspect', '--raw', '--tls-verify=false', '--creds', `${user}:${password}`, `docker://${image}`)) as { config?: unknown };
  assert.ok(manifest.config, 'the image is in the registry');
});
