// Runs a command to its end for the CLI's tests, with what it wrote to stdout and stderr.
import { spawn } from 'node:child_process';

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runProcess(command: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Finished> {
  return new Promise((res, rej) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', rej);
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}
