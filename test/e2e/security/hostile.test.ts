// Issue 9, hostile input: whatever a client sends — escaping context entries, crafted ADD
// archives, giant or pathological Dockerfiles, bad platforms, references, args and labels —
// is refused with a clear one-line error, nothing is written outside the build, and the
// frontend and workers keep answering afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import tar from 'tar-stream';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { solve } from '../grpcClient.js';
import { aliveProcesses, info, rawSync } from './clusterCalls.js';

let cluster: Cluster;
let work: string;
const nonce = `${process.pid}-${Date.now()}`;
const digestOf = 'sha256:' + 'a'.repeat(64);

before(async () => {
  cluster = await startCluster({ workers: 1 });
  work = mkdtempSync(join(tmpdir(), 'buildyard-hostile-'));
});
after(async () => {
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** A context dir with this Dockerfile (and optional files). */
function context(name: string, dockerfile: string, files: Record<string, string | Buffer> = {}): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), dockerfile);
  for (const [p, c] of Object.entries(files)) writeFileSync(join(dir, p), c);
  return dir;
}

async function stillServing(): Promise<void> {
  const alive = aliveProcesses(cluster);
  assert.ok(alive.frontend && alive.workers.every(Boolean), `every process is still running: ${JSON.stringify(alive)}`);
  const i = await info(cluster, cluster.token);
  assert.ok(i.workers >= 1, 'the frontend answers Info and sees its worker');
}

/** A one-line message: no stack trace, no multi-line dump. */
function assertOneLine(message: string | undefined, pattern: RegExp): void {
  assert.ok(message, 'an error message was given');
  assert.match(message, pattern);
  assert.ok(!message.includes('\n    at '), `no stack trace in the user's error: ${message}`);
  assert.ok(message.length < 600, `the error is short: ${message.length} chars`);
}

const hostileEntries: Array<[string, Partial<import('@buildyard/proto').ContextEntry>[], RegExp]> = [
  ['a ".." path', [{ path: '../etc/passwd', digest: digestOf, size: 1 }], /\.\./],
  ['a nested ".." path', [{ path: 'a/../../x', digest: digestOf, size: 1 }], /\.\./],
  ['an absolute path', [{ path: '/etc/shadow', digest: digestOf, size: 1 }], /absolute/],
  ['a character device', [{ path: 'null', mode: 0o020666 }], /character device/],
  ['a block device', [{ path: 'sda', mode: 0o060660 }], /block device/],
  ['a fifo', [{ path: 'pipe', mode: 0o010644 }], /fifo/],
  ['a NUL byte in a path', [{ path: 'a\0b', digest: digestOf, size: 1 }], /NUL/],
  ['a negative size', [{ path: 'neg', digest: digestOf, size: -5 }], /size/],
];

for (const [what, entries, pattern] of hostileEntries) {
  test(`ContextSync refuses ${what} with INVALID_ARGUMENT`, async () => {
    const { error, responses } = await rawSync(cluster, cluster.token, entries);
    assert.ok(error, `the sync failed (got ${JSON.stringify(responses)})`);
    assert.equal(error.code, status.INVALID_ARGUMENT, error.message);
    assertOneLine(error.details, pattern);
    assert.ok(!responses.some((r) => r.complete), 'no context id was issued');
  });
}

test('ContextSync without a token is refused before anything is stored', async () => {
  const { error } = await rawSync(cluster, 'not-a-token', [{ path: 'x', digest: digestOf, size: 1 }]);
  assert.equal(error?.code, status.UNAUTHENTICATED);
});

type TarEntry = { name: string; type?: 'file' | 'symlink' | 'link' | 'block-device' | 'character-device'; linkname?: string; body?: string; devmajor?: number; devminor?: number };

function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) {
    if (e.type && e.type !== 'file') pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o644, devmajor: e.devmajor, devminor: e.devminor });
    else pack.entry({ name: e.name, type: 'file', mode: 0o644 }, e.body ?? 'pwned');
  }
  pack.finalize();
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    pack.on('data', (c: unknown) => { parts.push(c as Buffer); }).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
  });
}

/** Files named like our marker anywhere under the cluster's state, /tmp and / (outside the build). */
function markersOnHost(marker: string): string[] {
  const found: string[] = [];
  for (const p of [`/${marker}`, `/tmp/${marker}`, `/etc/${marker}`]) if (existsSync(p)) found.push(p);
  const hits = execFileSync('find', [cluster.stateDir, work, '-name', marker, '-not', '-path', '*/snapshots/*'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  return [...found, ...hits.filter((h) => !h.includes('/contexts/'))];
}

// As BuildKit extracts an archive (docker's Unpack chrooted into the destination), the
// destination is the archive's root: what climbs out with '..', or goes through a link to one,
// lands inside it. `inside` is where the marker must be found in the image.
const archives: Array<[string, (m: string) => TarEntry[], { inside: string } | { error: RegExp }]> = [
  ['a "../" entry', (m) => [{ name: `../../../../../../tmp/${m}` }], { inside: '/dst/tmp' }],
  ['a symlink to /tmp through ".." followed by a write through it', (m) => [{ name: 'up', type: 'symlink', linkname: '../../../../../../../../tmp' }, { name: `up/${m}` }], { inside: '/dst/tmp' }],
  ['an absolute symlink to / followed by a write through it', (m) => [{ name: 'root', type: 'symlink', linkname: '/' }, { name: `root/etc/${m}` }], { inside: '/dst/etc' }],
  ['a hardlink to a host file', (m) => [{ name: m, type: 'link', linkname: '../../../../../../etc/passwd' }], { error: /Error processing tar file\(exit status 1\): link \/etc\/passwd \/pwned-\S+: no such file or directory \(the archive's hard link .* names no entry extracted before it/ }],
];

for (const [what, build, expect] of archives) {
  test(`ADD of a crafted tar with ${what} writes nothing outside the build`, async () => {
    const marker = `pwned-${nonce}-${archives.findIndex(([w]) => w === what)}`;
    const archive = await tarOf(build(marker));
    const check = 'inside' in expect ? `RUN test -f ${expect.inside}/${marker} && echo INSIDE-${marker}\n` : '';
    const dir = context(`add-${marker}`, `FROM ${cluster.busybox.reference}\nADD evil.tar /dst/\n${check}`, { 'evil.tar': archive });
    const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
    if ('inside' in expect) {
      assert.equal(outcome.error, undefined, `the archive extracts inside /dst: ${outcome.error?.message}`);
      assert.match(outcome.logs, new RegExp(`INSIDE-${marker}`));
    } else {
      assert.ok(outcome.error, 'the build failed');
      assertOneLine(outcome.error.message, expect.error);
    }
    assert.deepEqual(markersOnHost(marker), [], 'no file was written outside the build');
    await stillServing();
  });
}

test('device nodes an ADD archive brings (the host\'s disk, /dev/mem) are made, as BuildKit makes them, and a RUN cannot open them', async () => {
  const disk = statSync('/').dev;
  const archive = await tarOf([
    { name: 'disk', type: 'block-device', devmajor: Math.floor(disk / 256) & 0xfff, devminor: (disk & 0xff) | ((disk >> 12) & 0xfff00) },
    { name: 'mem', type: 'character-device', devmajor: 1, devminor: 1 },
  ]);
  const dir = context(`add-devices-${nonce}`, `FROM ${cluster.busybox.reference}\nADD devs.tar /dst/\n`
    + `RUN test -b /dst/disk && test -c /dst/mem && for d in disk mem; do if head -c 1 /dst/$d >/dev/null; then echo READ-$d; else echo DENIED-$d; fi; done\n`, { 'devs.tar': archive });
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'], noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, /DENIED-disk/);
  assert.match(outcome.logs, /DENIED-mem/);
  assert.doesNotMatch(outcome.logs, /READ-/);
});

test('a 10 MB Dockerfile is refused or parsed without crashing anything', { timeout: 60_000 }, async () => {
  const line = `RUN echo ${'x'.repeat(1000)}\n`;
  const dir = context('huge', `FROM ${cluster.busybox.reference}\n` + line.repeat(Math.ceil(10 * 1024 * 1024 / line.length)));
  const started = Date.now();
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'], target: 'nope' });
  // Target "nope" does not exist, so a build that parsed the file stops before running 10k steps.
  assert.ok(outcome.error, 'the build was refused');
  assertOneLine(outcome.error.message, /too large|nope|target/i);
  assert.ok(Date.now() - started < 30_000, `answered in ${Date.now() - started} ms`);
  await stillServing();
});

test('a Dockerfile with 100k continuation lines is handled in linear time', { timeout: 60_000 }, async () => {
  const dir = context('continuations', `FROM ${cluster.busybox.reference}\nRUN echo start \\\n` + '  && true \\\n'.repeat(100_000) + '  && echo end\n');
  const started = Date.now();
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'], target: 'nope' });
  assert.ok(outcome.error);
  assertOneLine(outcome.error.message, /too (large|long)|nope|target/i);
  assert.ok(Date.now() - started < 20_000, `answered in ${Date.now() - started} ms`);
  await stillServing();
});

test('deeply nested variable expansion is refused with a clear error, not a stack overflow', async () => {
  const depth = 50_000;
  const word = '${A:-'.repeat(depth) + 'x' + '}'.repeat(depth);
  const dir = context('nested', `FROM ${cluster.busybox.reference}\nARG A\nENV B=${word}\nRUN echo $B\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.ok(outcome.error, 'the build failed');
  assertOneLine(outcome.error.message, /nested too deeply/);
  assert.match(outcome.error.message, /Dockerfile:3|line 3/);
  await stillServing();
});

test('invalid platform strings are refused with INVALID_ARGUMENT', async () => {
  const dir = context('platform', `FROM ${cluster.busybox.reference}\n`);
  for (const platform of ['linux/ar m64', 'linux/amd64/v9/extra', '../../x', 'x'.repeat(5000)]) {
    await assert.rejects(solve(cluster, dir, { platforms: [platform] }), (err: { code: number; details: string }) => {
      assert.equal(err.code, status.INVALID_ARGUMENT, `${platform}: ${err.details}`);
      assertOneLine(err.details, /platform/i);
      return true;
    });
  }
  await stillServing();
});

test('invalid image references fail the build with a clear error naming the line', async () => {
  // The last two took a backtracking RegExp minutes to hours to refuse (the frontend held meanwhile).
  for (const ref of ['UPPER/Case:tag', 'busybox::latest', 'a'.repeat(300) + '/x', 'busybox@sha256:nothex', `${'a'.repeat(40)}!`, `x.io/${'a-'.repeat(2_000)}!`]) {
    const dir = context(`ref-${ref.length}-${ref.slice(0, 5).replace(/\W/g, '')}`, `FROM ${ref}\nRUN true\n`);
    const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
    assert.ok(outcome.error, `${ref} was refused`);
    assertOneLine(outcome.error.message, /reference|invalid|name/i);
  }
  await stillServing();
});

test('oversized build args and labels are refused with INVALID_ARGUMENT', async () => {
  const dir = context('oversized', `FROM ${cluster.busybox.reference}\n`);
  const big = 'v'.repeat(100 * 1024);
  await assert.rejects(solve(cluster, dir, { platforms: ['linux/amd64'], buildArgs: { BIG: big } }),
    (err: { code: number; details: string }) => err.code === status.INVALID_ARGUMENT && /build arg BIG/.test(err.details));
  await assert.rejects(solve(cluster, dir, { platforms: ['linux/amd64'], labels: { big } }),
    (err: { code: number; details: string }) => err.code === status.INVALID_ARGUMENT && /label/.test(err.details));
  await assert.rejects(solve(cluster, dir, { platforms: ['linux/amd64'], network: 'bridge;rm -rf /' }),
    (err: { code: number; details: string }) => err.code === status.INVALID_ARGUMENT && /network/.test(err.details));
  await stillServing();
});

test('after all hostile input a normal build still succeeds', async () => {
  const dir = context('normal', `FROM ${cluster.busybox.reference}\nRUN echo fine-${nonce}\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, new RegExp(`fine-${nonce}`));
});
