// Test helpers: a private, writable copy of testkit's busybox rootfs with extra users, and
// checks that runc has nothing left behind.
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { busyboxRootfs } from '@buildyard/testkit';
import type { Meta, RuncExecutor } from './index.js';

export interface TestDir {
  dir: string;
  rootfs: string;
  stateDir: string;
  remove(): void;
}

export async function makeTestDir(arch: 'amd64' | 'arm64' = 'amd64'): Promise<TestDir> {
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-executor-'));
  const rootfs = join(dir, 'rootfs');
  cpSync(await busyboxRootfs(arch), rootfs, { recursive: true, verbatimSymlinks: true });
  appendFileSync(join(rootfs, 'etc/passwd'), 'app:x:1000:1000:app:/home/app:/bin/sh\n');
  appendFileSync(join(rootfs, 'etc/group'), 'app:x:1000:\nstaff:x:50:app\naudio:x:63:root,app\n');
  return { dir, rootfs, stateDir: join(dir, 'state'), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function runcIds(runcRoot: string): string[] {
  if (!existsSync(runcRoot)) return [];
  return execFileSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

export function bundles(stateDir: string): string[] {
  const dir = join(stateDir, 'bundles');
  return existsSync(dir) ? readdirSync(dir) : [];
}

/** Pids whose command line contains all of `parts` (NUL-separated argv). */
export function processesMatching(...parts: string[]): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (parts.every((p) => argv.includes(p))) found.push(Number(name));
    } catch {
      // The process went away while we looked.
    }
  }
  return found;
}

export const canUseRunc = (() => {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('runc', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** Runs `sh -c script` in the rootfs (network none unless meta says otherwise); returns stdout
 *  and stderr together as text. */
export async function runScript(executor: RuncExecutor, rootfs: string, script: string, meta: Partial<Meta> = {}): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await executor.run({ rootfs, meta: { args: ['/bin/sh', '-c', script], env: [], cwd: '/', user: '', network: 'none', ...meta }, mounts: [], stdout: out, stderr: out });
  return Buffer.concat(chunks).toString();
}
