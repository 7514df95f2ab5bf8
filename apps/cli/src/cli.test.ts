import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SolveEvent, VertexStatus } from '@buildyard/proto';
import { startFakeBuilder } from './fakeBuilder.test-util.js';
import { appCommand, until } from '@buildyard/testkit';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
const NODE_ARGS = appCommand('cli');

function vertex(p: Partial<VertexStatus> & { digest: string; name: string }): VertexStatus {
  return { platform: '', stage: '', step: 0, steps: 0, workerId: '', emulated: false, cached: false, startedMs: 0, completedMs: 0, error: '', totalBytes: 0, currentBytes: 0, ...p };
}
const T = 1_700_000_000_000;
const FROM = vertex({ digest: 'd1', name: '[build 1/3] FROM docker.io/library/busybox:latest', platform: 'linux/arm64' });
const RUN = vertex({ digest: 'd2', name: '[build 2/3] RUN make', platform: 'linux/arm64', workerId: 'w-amd64-1', emulated: true });
const FAIL = vertex({ digest: 'd3', name: '[build 3/3] RUN false', platform: 'linux/arm64', workerId: 'w-arm64-1' });
const RESULT: SolveEvent = { timestampMs: T + 900, result: { buildId: 'b-1', digest: 'sha256:feedface', images: [{ platform: 'linux/arm64', manifestDigest: 'sha256:m', configDigest: 'sha256:c' }], pushed: [], metadata: { 'containerimage.descriptor': '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:m","size":500}' }, verticesTotal: 3, verticesCached: 1, durationMs: 900 } };
const SUCCESS: SolveEvent[] = [
  { timestampMs: T, accepted: { buildId: 'b-1', platforms: ['linux/arm64'] } },
  { timestampMs: T + 10, vertex: { ...FROM, cached: true, startedMs: T + 10, completedMs: T + 10 } },
  { timestampMs: T + 20, vertex: { ...RUN, startedMs: T + 20 } },
  { timestampMs: T + 200, log: { digest: 'd2', stream: 1, data: Buffer.from('compiling main.c\n'), truncated: false } },
  { timestampMs: T + 800, vertex: { ...RUN, startedMs: T + 20, completedMs: T + 800 } },
  { timestampMs: T + 850, file: { output: 0, path: 'bin', mode: 0o040755, data: Buffer.alloc(0), last: true, linkTarget: '', hardlinkTo: '', cache: false } },
  { timestampMs: T + 851, file: { output: 0, path: 'bin/app', mode: 0o100755, data: Buffer.from('#!/bin/sh\n'), last: false, linkTarget: '', hardlinkTo: '', cache: false } },
  { timestampMs: T + 852, file: { output: 0, path: 'bin/app', mode: 0o100755, data: Buffer.from('echo hi\n'), last: true, linkTarget: '', hardlinkTo: '', cache: false } },
  { timestampMs: T + 853, file: { output: 0, path: 'app', mode: 0o120777, data: Buffer.alloc(0), last: true, linkTarget: 'bin/app', hardlinkTo: '', cache: false } },
  RESULT,
];
const FAILURE: SolveEvent[] = [
  SUCCESS[0], SUCCESS[1],
  { timestampMs: T + 20, vertex: { ...FAIL, startedMs: T + 20 } },
  { timestampMs: T + 120, log: { digest: 'd3', stream: 2, data: Buffer.from('something broke\n'), truncated: false } },
  { timestampMs: T + 130, vertex: { ...FAIL, startedMs: T + 20, completedMs: T + 130, error: 'exit code: 1' } },
  { timestampMs: T + 131, error: { message: 'process "/bin/sh -c false" did not complete successfully: exit code: 1', vertex: 'd3', file: 'Dockerfile', line: 3, code: 'exec' } },
];
const DOCKERFILE = 'FROM busybox\nRUN make\nRUN false\nCMD ["/app"]\n';

interface Run { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }
/** Only a hung CLI takes this long; a loaded machine may need a minute to start one from TS sources. */
const HANG_MS = 180_000;

function runCli(args: string[], o: { cwd: string; env: NodeJS.ProcessEnv; stdin?: string; onStderr?: (s: string, child: ReturnType<typeof spawn>) => void; timeoutMs?: number }): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...NODE_ARGS, ...args], { cwd: o.cwd, env: { ...process.env, ...o.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); o.onStderr?.(stderr, child); });
    child.stdin.end(o.stdin ?? '');
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`CLI timed out: ${stderr}`)); }, o.timeoutMs ?? HANG_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => { clearTimeout(timer); resolvePromise({ code, signal, stdout, stderr }); });
  });
}

async function workspace(t: { after(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const ctx = join(dir, 'ctx');
  await mkdir(ctx);
  await writeFile(join(ctx, 'Dockerfile'), DOCKERFILE);
  await writeFile(join(ctx, 'main.c'), 'int main(){return 0;}\n');
  await writeFile(join(ctx, 'secret.txt'), 'do not upload\n');
  await writeFile(join(ctx, 'Dockerfile.dockerignore'), 'secret.txt\n');
  const env = { XDG_CONFIG_HOME: join(dir, 'config'), DOCKER_CONFIG: join(dir, 'docker'), HOME: dir, NO_COLOR: '' };
  return { dir, ctx, env };
}

test('tty progress in a pseudo-terminal (script): frames, timers, placement, final summary', async (t) => {
  const { dir, ctx, env } = await workspace(t);
  const fake = await startFakeBuilder({ events: SUCCESS, delayMs: 150 });
  t.after(() => fake.stop());
  const cmd = [process.execPath, ...NODE_ARGS, 'build', '--progress=auto', '-o', join(dir, 'out'), ctx].map((a) => `'${a}'`).join(' ');
  const res = await new Promise<Run>((resolvePromise, reject) => {
    const child = spawn('script', ['-qfec', `stty cols 100 rows 30; ${cmd}`, '/dev/null'], { cwd: repoRoot, env: { ...process.env, ...env, BUILDYARD_BUILDER: fake.endpoint, TERM: 'xterm' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stdin.end();
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`timed out: ${stdout}`)); }, HANG_MS);
    child.on('close', (code, signal) => { clearTimeout(timer); resolvePromise({ code, signal, stdout, stderr: '' }); });
  });
  assert.equal(res.code, 0, res.stdout);
  const out = res.stdout;
  assert.match(out, /\x1b\[/, 'ANSI redraws: the CLI saw a terminal');
  assert.match(out, /\[\+\] Building \d+\.\ds \(\d+\/\d+\)/);
  assert.match(out, /=> CACHED \[build 1\/3\] FROM docker\.io\/library\/busybox:latest linux\/arm64/);
  assert.match(out, /=> \[build 2\/3\] RUN make linux\/arm64 on w-amd64-1 \(emulated\)/);
  assert.match(out, /=> => # compiling main\.c/, 'running steps show their log tail');
  assert.match(out, /\[\+\] Building \d+\.\ds \(3\/3\) FINISHED/);
  assert.match(out, /=> \[build 2\/3\] RUN make linux\/arm64 on w-amd64-1 \(emulated\) +0\.[1-9]s/, 'the running step timer ticks');
  assert.match(out, /cache hits 1\/3/);
  assert.doesNotMatch(out, /^#\d /m, 'no plain-mode lines on a terminal');
  // The context was uploaded without the file the Dockerfile's own .dockerignore excludes.
  assert.equal(fake.contexts.length, 1);
  assert.equal(fake.requests[0].contextId, fake.contexts[0]);
  assert.equal(fake.requests[0].dockerignore.toString(), 'secret.txt\n');
  assert.equal(await readFile(join(dir, 'out/bin/app'), 'utf8'), '#!/bin/sh\necho hi\n');
  assert.equal(await readlink(join(dir, 'out/app')), 'bin/app');
});

test('plain progress, request fields, quiet digest and metadata file', async (t) => {
  const { dir, ctx, env } = await workspace(t);
  const fake = await startFakeBuilder({ events: SUCCESS });
  t.after(() => fake.stop());
  await mkdir(env.DOCKER_CONFIG, { recursive: true });
  await writeFile(join(env.DOCKER_CONFIG, 'config.json'), JSON.stringify({ auths: {
    'ghcr.io': { auth: Buffer.from('u:p').toString('base64') },
    'unrelated.example.com': { auth: Buffer.from('x:y').toString('base64') },
  } }));
  const plain = await runCli([
    'build', '--progress=plain', '-t', 'ghcr.io/org/app:1', '--platform', 'linux/arm64', '--build-arg', 'FROM_ENV', '--build-arg', 'A=1',
    '--secret', 'id=tok,env=MY_TOKEN', '--label', 'team=core', '--no-cache', '-o', `type=local,dest=${join(dir, 'out')}`,
    '--metadata-file', 'meta.json', ctx,
  ], { cwd: dir, env: { ...env, BUILDYARD_BUILDER: fake.endpoint, FROM_ENV: 'yes', MY_TOKEN: 'hunter2' } });
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(plain.stdout, '');
  const lines = plain.stderr.split('\n');
  for (const want of ['#1 [internal] load build context', '#2 [build 1/3] FROM docker.io/library/busybox:latest (linux/arm64)', '#2 CACHED',
    '#3 [build 2/3] RUN make (linux/arm64 on w-amd64-1 (emulated))', '#3 0.180 compiling main.c', '#3 DONE 0.8s', 'Build b-1 finished in 0.9s, cache hits 1/3', 'digest: sha256:feedface']) {
    assert.ok(lines.includes(want), `missing "${want}" in:\n${plain.stderr}`);
  }
  const req = fake.requests[0];
  assert.deepEqual(req.buildArgs, { FROM_ENV: 'yes', A: '1' });
  assert.deepEqual(req.platforms, ['linux/arm64']);
  assert.deepEqual(req.labels, { team: 'core' });
  assert.equal(req.noCache, true);
  assert.deepEqual(req.secrets.map((s) => [s.id, s.value.toString()]), [['tok', 'hunter2']]);
  assert.equal(req.dockerfile.toString(), DOCKERFILE);
  assert.deepEqual(req.registryAuth.map((a) => [a.registry, a.username]), [['ghcr.io', 'u']], 'only registries the build names');
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  assert.equal(meta['containerimage.digest'], 'sha256:feedface');
  assert.equal(meta['image.name'], 'ghcr.io/org/app:1');
  assert.equal(meta['containerimage.descriptor'].digest, 'sha256:m');

  fake.options.events = SUCCESS.filter((e) => !e.file);
  // buildx's --cgroup-parent is accepted and ignored, saying so.
  const quiet = await runCli(['build', '-q', '--cgroup-parent', '/host.slice', '-f', '-', ctx], { cwd: dir, env: { ...env, BUILDYARD_BUILDER: fake.endpoint }, stdin: 'FROM scratch\n' });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, 'sha256:feedface\n');
  assert.match(quiet.stderr, /^WARNING: --cgroup-parent is ignored: a remote builder runs each RUN step in a cgroup of its own/m);
  assert.equal(fake.requests[1].dockerfile.toString(), 'FROM scratch\n');
});

test('a failed build exits 1 with the buildx error and Dockerfile excerpt', async (t) => {
  const { dir, ctx, env } = await workspace(t);
  const fake = await startFakeBuilder({ events: FAILURE });
  t.after(() => fake.stop());
  const res = await runCli(['build', '--progress=plain', ctx], { cwd: dir, env: { ...env, BUILDYARD_BUILDER: fake.endpoint } });
  assert.equal(res.code, 1, res.stderr);
  const tail = res.stderr.slice(res.stderr.indexOf('------'));
  assert.deepEqual(tail.trimEnd().split('\n'), [
    '------', ' > [build 3/3] RUN false:', '0.100 something broke', '------',
    'ERROR: failed to solve: process "/bin/sh -c false" did not complete successfully: exit code: 1',
    'Dockerfile:3', '--------------------', '   1 |     FROM busybox', '   2 |     RUN make', '   3 | >>> RUN false', '   4 |     CMD ["/app"]', '--------------------',
  ]);
});

test('exit codes: unreachable builder 3, refused token 3, usage 2, Ctrl-C 130 cancels the build', async (t) => {
  const { dir, ctx, env } = await workspace(t);
  const down = await runCli(['build', ctx], { cwd: dir, env: { ...env, BUILDYARD_BUILDER: 'tcp://127.0.0.1:1' } });
  assert.equal(down.code, 3, down.stderr);
  assert.match(down.stderr, /ERROR: .*cannot reach builder "tcp:\/\/127\.0\.0\.1:1".*buildyard builder ls/);

  const locked = await startFakeBuilder({ events: SUCCESS.filter((e) => !e.file), token: 'right' });
  t.after(() => locked.stop());
  const refused = await runCli(['build', '-', '--progress=plain'], { cwd: dir, env: { ...env, BUILDYARD_BUILDER: locked.endpoint, BUILDYARD_TOKEN: 'wrong' }, stdin: DOCKERFILE });
  assert.equal(refused.code, 3, refused.stderr);
  assert.match(refused.stderr, /refused the credentials/);
  const accepted = await runCli(['build', '-', '-q'], { cwd: dir, env: { ...env, BUILDYARD_BUILDER: locked.endpoint, BUILDYARD_TOKEN: 'right' }, stdin: DOCKERFILE });
  assert.equal(accepted.code, 0, accepted.stderr);

  const usage = await runCli(['build', '--output', 'type=zip', ctx], { cwd: dir, env });
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /ERROR: --output "type=zip": unknown type "zip"/);
  const help = await runCli(['--help'], { cwd: dir, env });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /130 +interrupted/);

  const hanging = await startFakeBuilder({ events: SUCCESS.slice(0, 3), hang: true });
  t.after(() => hanging.stop());
  let sent = false;
  const interrupted = await runCli(['build', '--progress=plain', ctx], {
    cwd: dir, env: { ...env, BUILDYARD_BUILDER: hanging.endpoint },
    onStderr: (s, child) => { if (!sent && s.includes('RUN make')) { sent = true; child.kill('SIGINT'); } },
  });
  assert.equal(interrupted.code, 130, interrupted.stderr);
  await until('the server to see the call cancelled', () => hanging.cancelled > 0).catch(() => undefined); // asserted below
  assert.equal(hanging.cancelled, 1, 'closing the stream cancels the build on the server');
});

test('builder create/ls/inspect/use/rm, du and prune against a builder', async (t) => {
  const { dir, env } = await workspace(t);
  const fake = await startFakeBuilder({ events: [], workers: [
    { id: 'w-amd64-1', nativePlatforms: ['linux/amd64'], emulatedPlatforms: ['linux/arm64'], capacity: 4, running: 1, cacheBytes: 1_000_000, lastHeartbeatMs: 0, draining: false, version: '1' },
  ] });
  t.after(() => fake.stop());
  const cli = (args: string[], stdin?: string) => runCli(args, { cwd: dir, env, stdin });
  assert.equal((await cli(['builder', 'create', '--name', 'fake', fake.endpoint])).code, 0);
  assert.equal((await cli(['builder', 'create', '--name', 'gone', 'tcp://127.0.0.1:1'])).code, 0);
  const ls = await cli(['builder', 'ls']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.match(ls.stdout, /^NAME\/NODE +DRIVER\/ENDPOINT +STATUS +BUILDKIT +PLATFORMS$/m, 'docker buildx ls columns');
  assert.match(ls.stdout, new RegExp(`^fake \\* +${fake.endpoint.replace(/[/.]/g, '\\$&')} +running +fake-1 +linux/amd64, linux/arm64\\*$`, 'm'));
  assert.match(ls.stdout, /^ {2}w-amd64-1 +ready +1 +linux\/amd64, linux\/arm64 \(emulated\)$/m);
  assert.match(ls.stdout, /^gone +tcp:\/\/127\.0\.0\.1:1 +unreachable$/m);
  assert.equal((await cli(['ls'])).stdout, ls.stdout, 'ls is builder ls, as docker buildx ls');
  const version = await cli(['version', '--builder', 'fake']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^buildyard v\d+\.\d+\.\d+\nbuilder fake \(tcp:\/\/[^)]+\) fake-1\n$/);
  const versionGone = await cli(['version', '--builder', 'gone']);
  assert.equal(versionGone.code, 3);
  assert.match(versionGone.stdout, /^buildyard v/, 'the client\'s version even when the builder does not answer');
  const inspect = await cli(['builder', 'inspect']);
  assert.equal(inspect.code, 0, inspect.stderr);
  assert.match(inspect.stdout, /^Version: +fake-1$/m);
  assert.match(inspect.stdout, /^w-amd64-1 +linux\/amd64 +linux\/arm64 +1\/4 +1\.00MB +ready$/m);
  const du = await cli(['du']);
  assert.match(du.stdout, /^sha256:aaa +true +2\.50MB/m);
  assert.match(du.stdout, /^Total: +2\.50MB$/m);
  const no = await cli(['prune'], 'n\n');
  assert.equal(no.code, 1);
  assert.match(no.stderr, /Are you sure.*\[y\/N\]/);
  const yes = await cli(['prune', '--keep-storage', '10GB'], 'y\n');
  assert.equal(yes.code, 0, yes.stderr);
  assert.match(yes.stdout, /^Total: +2\.50MB$/m);
  assert.equal((await cli(['prune', '-f', '--keep-storage', 'lots'])).code, 2);
  assert.equal((await cli(['builder', 'use', 'gone'])).code, 0);
  const unreachable = await cli(['builder', 'inspect']);
  assert.equal(unreachable.code, 3);
  assert.equal((await cli(['builder', 'rm', 'gone'])).code, 0);
  assert.equal((await cli(['builder', 'rm', 'gone'])).code, 2);
});
