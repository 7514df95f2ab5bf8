// What the two halves of SSH agent forwarding are tested against (the frontend's in
// packages/control, the worker's in packages/fleet): a real Redis, a real ssh-agent and a scratch
// dir for unix sockets, started before a file's tests and stopped after them; and `ssh-add` run
// against any socket, as a RUN step's client would.
import { after, before } from 'node:test';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type RedisService } from './services.js';
import { startSshAgent, type SshAgentService } from './sshAgent.js';

export interface SshRelayFixture {
  readonly redis: Redis;
  readonly agent: SshAgentService;
  /** A scratch dir for the tests' sockets. */
  readonly dir: string;
}

export function sshRelayFixture(label: string): SshRelayFixture {
  let redisService: RedisService | undefined;
  let redis: Redis | undefined;
  let agent: SshAgentService | undefined;
  let dir = '';
  before(async () => {
    redisService = await startRedis();
    redis = new Redis(redisService.url);
    agent = await startSshAgent();
    dir = mkdtempSync(join(tmpdir(), `buildyard-${label}-`));
  });
  after(async () => {
    redis?.disconnect();
    await redisService?.stop();
    await agent?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined) throw new Error('the ssh relay fixture is not started yet: use it inside a test');
    return value;
  };
  return {
    get redis() { return started(redis); },
    get agent() { return started(agent); },
    get dir() { return started(dir || undefined); },
  };
}

/** `ssh-add ARGS` against `socket`: its exit code and output (never throws). */
export function sshAdd(socket: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => execFile('ssh-add', args, { env: { ...process.env, SSH_AUTH_SOCK: socket } }, (err, stdout, stderr) => {
    resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
  }));
}
