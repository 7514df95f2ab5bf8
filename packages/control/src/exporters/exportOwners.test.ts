// A frontend that starts removes what the exports of a crashed one left in its export dir, and
// nothing of a live one's: owners it can see (this boot, this pid namespace) by pid and start
// time, others (another machine or container on a shared dir) by the age of their `alive` file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { createLogger } from '@buildyard/telemetry';
import { startRedis } from '@buildyard/testkit';
import { Frontend } from '../Frontend.js';
import { OWNER_STALE_MS, ownExportDir, reclaimExportDirs } from './exportOwners.js';

const CHILD = fileURLToPath(new URL('./exportOwnerChild.test-util.ts', import.meta.url));

/** A process that owns a directory under `base` with a file in it, as a frontend exporting; it runs until its stdin closes. */
async function startOwner(base: string): Promise<{ child: ChildProcess; dir: string }> {
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', CHILD, base], { stdio: ['pipe', 'pipe', 'inherit'] });
  const dir = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const m = /ready (\S+)\n/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code, sig) => reject(new Error(`the owner exited (${code ?? sig}) before taking its directory`)));
  });
  return { child, dir };
}

const exited = (child: ChildProcess) => new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));

/** A crashed owner: a real process that took its directory, SIGKILLed, its pid gone. */
async function crashedOwner(base: string): Promise<string> {
  const { child, dir } = await startOwner(base);
  child.kill('SIGKILL');
  await exited(child);
  assert.equal(existsSync(`/proc/${child.pid}`), false, 'the dead owner\'s pid no longer exists');
  return dir;
}

/** The directory of an owner this process cannot see (another machine's boot), its `alive` file `ageMs` old. */
async function foreignOwner(base: string, ageMs: number): Promise<string> {
  const dir = join(base, `${randomUUID()}.4026531836.1.${1000 + Math.floor(Math.random() * 1000)}`);
  await mkdir(dir);
  await writeFile(join(dir, 'unpacked'), 'an export of another machine');
  await writeFile(join(dir, 'alive'), '1\n');
  const then = new Date(Date.now() - ageMs);
  await utimes(join(dir, 'alive'), then, then);
  return dir;
}

test('reclaimExportDirs removes a dead owner\'s directory and a long-silent foreign one, and keeps a live owner\'s, this process\'s and what no owner named', async () => {
  const base = await mkdtemp(join(tmpdir(), 'buildyard-export-owners-'));
  const live = await startOwner(base);
  try {
    const dead = await crashedOwner(base);
    const foreignStale = await foreignOwner(base, OWNER_STALE_MS + 5 * 60_000);
    const foreignLive = await foreignOwner(base, 60_000);
    await mkdir(join(base, 'notes'));

    const removed = await reclaimExportDirs(base);
    assert.deepEqual(removed.sort(), [basename(dead), basename(foreignStale)].sort());
    assert.equal(existsSync(dead), false, 'the crashed owner\'s export is removed');
    assert.equal(existsSync(join(live.dir, 'unpacked')), true, 'the live owner\'s export stays');
    assert.equal(existsSync(join(foreignLive, 'unpacked')), true, 'a foreign owner that rewrote its alive file a minute ago stays');
    assert.equal(existsSync(join(base, 'notes')), true, 'what no owner named stays');
    assert.equal(existsSync(await ownExportDir(base)), true, 'this process keeps its own');
  } finally {
    live.child.stdin!.end();
    await exited(live.child);
    await rm(base, { recursive: true, force: true });
  }
});

test('a frontend without a state dir removes a crashed frontend\'s exports from the shared dir when it starts, in the background, and keeps a live one\'s', async () => {
  const redisService = await startRedis();
  const redis = new Redis(redisService.url);
  const scheduler = new Scheduler(redisService.url, { tickMs: 0 });
  const workers = new WorkerRegistry(redisService.url);
  const sharedDir = await mkdtemp(join(tmpdir(), 'buildyard-export-owners-'));
  const exportDir = join(sharedDir, 'exports');
  const live = await startOwner(exportDir);
  let frontend: Frontend | undefined;
  try {
    const dead = await crashedOwner(exportDir);
    let reported!: (removed: string[]) => void;
    const reclaimed = new Promise<string[]>((resolve) => (reported = resolve));
    const log = createLogger('buildyardd', { level: 'info', destination: { write: (line: string) => {
      const entry = JSON.parse(line) as { msg?: string; removed?: string[] };
      if (entry.msg?.startsWith('removed exports')) reported(entry.removed ?? []);
    } } });
    frontend = new Frontend({
      redis, scheduler, workers, log, tokens: new Map(), sharedDir, secretsKey: '', insecureRegistries: [], buildPlatform: 'linux/amd64', version: '0.0.0',
      maxContextBytes: 1 << 20, maxContextFiles: 100, maxLogBytesPerStep: 1 << 16,
    });
    assert.equal(frontend.exportDir, exportDir);
    await frontend.listen('127.0.0.1:0');
    assert.deepEqual(await reclaimed, [basename(dead)]);
    assert.equal(existsSync(dead), false, 'the crashed frontend\'s export is removed');
    assert.equal(existsSync(join(live.dir, 'unpacked')), true, 'the live frontend\'s export stays');
    assert.equal((await readdir(exportDir)).length, 2, 'the live one\'s directory and the new frontend\'s own');
  } finally {
    await frontend?.close();
    live.child.stdin!.end();
    await exited(live.child);
    await scheduler.close();
    await workers.close();
    redis.disconnect();
    await redisService.stop();
    await rm(sharedDir, { recursive: true, force: true });
  }
});
