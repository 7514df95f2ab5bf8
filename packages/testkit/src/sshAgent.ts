// A real OpenSSH agent for tests of SSH forwarding (RUN --mount=type=ssh): ssh-agent on a
// private socket, holding a fresh key made by ssh-keygen and added with ssh-add.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireCommand } from '@buildyard/hostkit';
import { supervise } from './supervise.js';
import { until } from './until.js';

export interface SshKey {
  /** The private key file (no passphrase). */
  path: string;
  /** The `.pub` file next to it. */
  publicPath: string;
  /** `SHA256:...`, as `ssh-add -l` prints it. */
  fingerprint: string;
}

export interface SshAgentService {
  /** The agent's socket (SSH_AUTH_SOCK). */
  socket: string;
  /** The key the agent holds. */
  key: SshKey;
  /** `ssh-add -l` against this agent (or another socket): its stdout, or throws. */
  list(socket?: string): string;
  stop(): Promise<void>;
}

/** Makes a key without a passphrase in `dir` (`type`: ed25519, ecdsa, rsa). */
export function makeSshKey(dir: string, name: string, type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519'): SshKey {
  requireCommand('ssh-keygen', 'openssh-client');
  const path = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `${name}@buildyard-test`, '-f', path]);
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-f', `${path}.pub`], { encoding: 'utf8' }).split(' ')[1];
  return { path, publicPath: `${path}.pub`, fingerprint };
}

/** Starts ssh-agent in the foreground (stopped by stop()) holding one new ed25519 key. */
export async function startSshAgent(): Promise<SshAgentService> {
  requireCommand('ssh-agent', 'openssh-client');
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-ssh-agent-'));
  const socket = join(dir, 'agent.sock');
  const agent = supervise('ssh-agent', 'ssh-agent', ['-D', '-a', socket]);
  await until('ssh-agent to listen', () => existsSync(socket));
  const key = makeSshKey(dir, 'id_test');
  execFileSync('ssh-add', [key.path], { env: { ...process.env, SSH_AUTH_SOCK: socket }, stdio: 'ignore' });
  return {
    socket,
    key,
    list: (other = socket) => execFileSync('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: other }, encoding: 'utf8' }),
    async stop() {
      await agent.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
