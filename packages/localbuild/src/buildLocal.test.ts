// Acceptance of the worker engine with real runc, overlayfs and registry: builds the fixture
// Dockerfile and checks the result with umoci, an independent unpacker.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createGunzip } from 'node:zlib';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRegistry, seedBusybox, until, type RegistryService } from '@buildyard/testkit';
import { openLocalEngine } from '@buildyard/solver';
import { buildLocal, type LocalBuildResult } from './index.js';

const fixture = join(dirname(fileURLToPath(import.meta.url)), 'fixtures/engine');
const SECRET = 's3cr3t-VALUE-never-stored';
let registry: RegistryService;
let base: string;
let work: string;

before(async () => {
  registry = await startRegistry();
  base = (await seedBusybox(registry)).reference;
  work = await mkdtemp(join(tmpdir(), 'buildyard-engine-'));
});
after(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function build(name: string, platform: string, extra: Partial<Parameters<typeof buildLocal>[0]> = {}): Promise<{ result: LocalBuildResult; layout: string; logs: string }> {
  const layout = join(work, `${name}-layout`);
  let logs = '';
  const result = await buildLocal({
    contextDir: fixture, platforms: [platform], buildArgs: { BASE: base }, stateDir: join(work, 'state'),
    ociLayoutDir: layout, secrets: new Map([['token', Buffer.from(SECRET)]]),
    events: { vertex: (v) => { logs += `${v.state} ${v.name}\n`; }, log: (_d, _s, data) => { logs += data.toString(); } },
    ...extra,
  });
  return { result, layout, logs };
}

function unpack(layout: string, name: string): string {
  const bundle = join(work, `${name}-bundle`);
  execFileSync('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { stdio: 'pipe' });
  return join(bundle, 'rootfs');
}

function processesRunning(argv: string[]): number[] {
  return readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((pid) => {
    try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ') === argv.join(' '); } catch { return false; }
  }).map(Number);
}

/** Lists the entries of every layer blob the image references, decompressed. */
async function layerEntries(layout: string, result: LocalBuildResult): Promise<{ names: string[][]; raw: Buffer[] }> {
  const names: string[][] = [];
  const raw: Buffer[] = [];
  for (const layer of result.images[0].layers) {
    const path = join(layout, 'blobs/sha256', layer.digest.slice(7));
    const chunks: Buffer[] = [];
    for await (const c of createReadStream(path).pipe(createGunzip())) chunks.push(c as Buffer);
    raw.push(Buffer.concat(chunks));
    names.push(execFileSync('tar', ['-tzf', path], { encoding: 'utf8' }).split('\n').filter(Boolean));
  }
  return { names, raw };
}

test('RUN, COPY, ADD, WORKDIR, USER, ENV and mounts produce the expected files, owners and modes (umoci)', async () => {
  const { result, layout, logs } = await build('amd64', 'linux/amd64');
  const rootfs = unpack(layout, 'amd64');
  assert.equal(readFileSync(join(rootfs, 'app/hello.txt'), 'utf8'), 'hello from the context\n');
  assert.equal(readFileSync(join(rootfs, 'app/greeting'), 'utf8'), 'hello\n');
  assert.equal(readFileSync(join(rootfs, 'arch'), 'utf8'), 'x86_64\n');
  assert.equal(readFileSync(join(rootfs, 'opt/pkg/data.txt'), 'utf8'), 'packed\n', 'ADD extracts a local tar.gz');
  assert.ok(existsSync(join(rootfs, 'ctx/hello.txt')));
  assert.ok(!existsSync(join(rootfs, 'ctx/ignored.txt')), '.dockerignore keeps ignored files out');
  assert.ok(!existsSync(join(rootfs, 'bin/vi')), 'a file deleted by RUN is gone');
  assert.equal(readFileSync(join(rootfs, 'app/secret-len'), 'utf8').trim(), String(SECRET.length));
  assert.equal(readFileSync(join(rootfs, 'tmp/uid'), 'utf8'), '1000\n1000\n', 'USER app runs as uid/gid 1000');
  const owned = statSync(join(rootfs, 'home/app/owned.txt'));
  assert.equal(owned.uid, 1000);
  assert.equal(owned.gid, 1000);
  assert.equal(owned.mode & 0o777, 0o640);
  assert.ok(statSync(join(rootfs, 'app')).isDirectory(), 'WORKDIR was created');
  assert.equal(readFileSync(join(rootfs, 'app/bound.txt'), 'utf8'), 'hello from the context\n', 'a read-only bind mount of a context file');
  assert.ok(!existsSync(join(fixture, 'written-by-run')) && !existsSync(join(rootfs, 'ctx-rw/written-by-run')), 'writes to an rw bind mount are discarded');
  assert.ok(!existsSync(join(rootfs, 'scratch/x')), 'tmpfs contents never reach a layer');
  assert.equal(readFileSync(join(rootfs, 'app/heredoc.txt'), 'utf8'), 'heredoc on x86_64\n', 'RUN heredoc');

  const config = JSON.parse(readFileSync(join(layout, 'blobs/sha256', result.images[0].config.descriptor.digest.slice(7)), 'utf8'));
  assert.equal(config.architecture, 'amd64');
  assert.equal(config.config.User, 'app');
  assert.equal(config.config.WorkingDir, '/app');
  assert.ok(config.config.Env.includes('GREETING=hello'));
  assert.equal(config.rootfs.diff_ids.length, result.images[0].layers.length);
  assert.equal(config.history.filter((h: { empty_layer?: boolean }) => !h.empty_layer).length, config.rootfs.diff_ids.length);

  const { names, raw } = await layerEntries(layout, result);
  assert.ok(names.some((entries) => entries.includes('bin/.wh.vi')), 'the RUN that deletes /bin/vi has a whiteout');
  for (const tar of raw) assert.ok(!tar.includes(SECRET), 'the secret is in no layer');
  assert.ok(!logs.includes(SECRET), 'the secret is in no log');
  assert.match(logs, /secret mounted/);
});

test('a linux/arm64 build runs under QEMU emulation and RUN uname -m writes aarch64', { skip: process.arch !== 'x64' && 'host is not amd64' }, async () => {
  const { result, layout } = await build('arm64', 'linux/arm64');
  assert.equal(result.images[0].platform, 'linux/arm64');
  const rootfs = unpack(layout, 'arm64');
  assert.equal(readFileSync(join(rootfs, 'arch'), 'utf8'), 'aarch64\n');
});

test('the cache mount persists across builds and a rebuild without changes is fully cached', async () => {
  const cached = await build('cached', 'linux/amd64');
  assert.ok(cached.result.stages.every((s) => s.verticesCached === s.verticesTotal), 'nothing re-ran');
  const rerun = await build('rerun', 'linux/amd64', { noCache: true });
  const rootfs = unpack(rerun.layout, 'rerun');
  const runs = readFileSync(join(rootfs, 'app/count'), 'utf8');
  assert.ok(runs.split('\n').filter(Boolean).length >= 2, `the cache mount kept the first run's line: ${JSON.stringify(runs)}`);
});

test('building twice from scratch with SOURCE_DATE_EPOCH gives byte-identical layers', async () => {
  const a = await build('det-a', 'linux/amd64', { stateDir: join(work, 'det-a-state'), sourceDateEpoch: 1_700_000_000, noCache: true, secrets: new Map([['token', Buffer.from('x')]]) });
  const b = await build('det-b', 'linux/amd64', { stateDir: join(work, 'det-b-state'), sourceDateEpoch: 1_700_000_000, noCache: true, secrets: new Map([['token', Buffer.from('x')]]) });
  // /app/count comes from a per-state-dir cache mount, so both builds see one run.
  assert.deepEqual(a.result.images[0].layers.map((l) => l.digest), b.result.images[0].layers.map((l) => l.digest));
});

test('killing the engine mid-RUN leaves no mounts, containers or half-written blobs once it restarts', async () => {
  const stateDir = join(work, 'kill-state');
  const context = await mkdtemp(join(work, 'kill-ctx-'));
  const { writeFile } = await import('node:fs/promises');
  await writeFile(join(context, 'Dockerfile'), `FROM ${base}\nRUN echo started && sleep 4321\n`);
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(dirname(fileURLToPath(import.meta.url)), 'fixtures/run-local.ts'), context, stateDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => { output += d; if (output.includes('started')) resolve(); });
    child.stderr.on('data', (d) => { output += d; });
    child.once('exit', (code) => reject(new Error(`run-local exited (${code}) before RUN started: ${output}`)));
  });
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));

  await openLocalEngine(stateDir);
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').filter((l) => l.includes(stateDir));
  assert.deepEqual(mounts, [], 'no mount under the state dir survives');
  const containers = JSON.parse(execFileSync('runc', ['--root', join(stateDir, 'runc/runc'), 'list', '--format', 'json'], { encoding: 'utf8' }) || '[]') ?? [];
  assert.deepEqual(containers, [], 'no runc container survives');
  const ingest = join(stateDir, 'blobs/ingest');
  assert.deepEqual(existsSync(ingest) ? await readdir(ingest) : [], [], 'no half-written blob survives');
  // A duration no other test uses, so a concurrent test's sleep is never mistaken for ours.
  await until('the RUN process to be gone', () => processesRunning(['sleep', '4321']).length === 0, 30_000, 100)
    .catch(() => assert.deepEqual(processesRunning(['sleep', '4321']), [], 'the RUN process is gone'));
});
