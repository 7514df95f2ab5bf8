// The real `buildyard` CLI (from its TypeScript sources) and reference tools as child processes,
// for e2e tests that run several at once: asynchronous, so the test's own servers keep serving.
import { execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Cluster } from '@buildyard/testkit';
import { appCommand } from '@buildyard/testkit';


export interface ProcessRun { status: number; stdout: string; stderr: string }

/** Runs `buildyard ARGS` in `cwd` against `cluster` (its default tenant unless `token`); `signal` kills it. */
export function runCli(cluster: Pick<Cluster, 'frontend' | 'token'>, cwd: string, args: string[], token = cluster.token, signal?: AbortSignal): Promise<ProcessRun> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, appCommand('cli', ...args), {
      cwd, env: { ...process.env, XDG_CONFIG_HOME: join(cwd, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: token }, signal,
    });
    child.on('error', () => undefined); // an abort kills it; 'close' still reports
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('close', (code) => resolveRun({ status: code ?? -1, stdout, stderr }));
  });
}

/** Runs a tool (buildctl, docker-buildx); `status` is its exit code. */
export function runTool(bin: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ProcessRun> {
  return new Promise((resolveRun) => {
    execFile(bin, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}
