// `--ssh` on the client: buildx's spelling, and the agents it forwards, driven by OpenSSH's own
// ssh-add over a unix socket (as a RUN step's ssh client would reach them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeSshKey, startSshAgent, type SshAgentService } from '@buildyard/testkit';
import { ClientError, ExitCode } from './ClientError.js';
import { checkSshSpecs, loadSshAgents, parseSshSpec, type LocalSshAgents } from './sshAgents.js';

let dir: string;
let agent: SshAgentService;
const servers: Server[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'buildyard-ssh-client-'));
  agent = await startSshAgent();
});
after(async () => {
  for (const s of servers) s.close();
  await agent?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const usage = (fn: () => unknown, message: RegExp) => assert.throws(fn, (err: unknown) => err instanceof ClientError && err.exitCode === ExitCode.Usage && message.test(err.message));

/** Serves `agents`' id on a unix socket, as the frontend's relay reaches it for a step. */
async function serve(agents: LocalSshAgents, id: string): Promise<string> {
  const path = join(dir, `${id}-${servers.length}.sock`);
  const server = createServer((socket) => {
    const conn = agents.dial(id);
    socket.pipe(conn).pipe(socket);
    socket.on('close', () => conn.destroy());
    // ssh-add may close before the last reply is written.
    socket.on('error', () => {});
    conn.on('error', () => {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return path;
}

function sshAdd(socket: string, ...args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => execFile('ssh-add', args, { env: { ...process.env, SSH_AUTH_SOCK: socket } }, (err, stdout, stderr) => {
    resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, out: stdout + stderr });
  }));
}

test('--ssh specs read as buildx reads them', () => {
  assert.deepEqual(parseSshSpec('default', { SSH_AUTH_SOCK: '/run/agent.sock' }, '/w'), { id: 'default', paths: ['/run/agent.sock'] });
  assert.deepEqual(parseSshSpec('default=/k/a', {}, '/w'), { id: 'default', paths: ['/k/a'] });
  assert.deepEqual(parseSshSpec('deploy=keys/a,/k/b', {}, '/w'), { id: 'deploy', paths: ['/w/keys/a', '/k/b'] });
  usage(() => parseSshSpec('default', {}, '/w'), /^--ssh default: SSH_AUTH_SOCK is not set; start an agent/);
  usage(() => parseSshSpec('=/k/a', {}, '/w'), /missing id/);
  usage(() => checkSshSpecs([{ id: 'a', paths: ['/x'] }, { id: 'a', paths: ['/y'] }]), /--ssh a: given twice/);
});

test('an agent socket is forwarded read-only: keys list and sign, adding and removing are refused', async () => {
  const agents = await loadSshAgents([{ id: 'default', paths: [agent.socket] }]);
  assert.deepEqual(agents.ids, ['default']);
  const sock = await serve(agents, 'default');
  const listed = await sshAdd(sock, '-l');
  assert.equal(listed.code, 0, listed.out);
  assert.ok(listed.out.includes(agent.key.fingerprint), listed.out);
  assert.equal((await sshAdd(sock, '-T', agent.key.publicPath)).code, 0, 'the agent signed and the signature verifies');
  const removed = await sshAdd(sock, '-D');
  assert.notEqual(removed.code, 0, removed.out);
  const extra = makeSshKey(dir, 'extra');
  assert.notEqual((await sshAdd(sock, extra.path)).code, 0, 'a step cannot add keys to the client\'s agent');
  assert.ok(agent.list().includes(agent.key.fingerprint), 'the client\'s agent still holds its key');
  assert.ok(!agent.list().includes(extra.fingerprint));
});

test('private key files are served by an agent in this process: ed25519, ecdsa and rsa sign verifiably', async () => {
  const keys = (['ed25519', 'ecdsa', 'rsa'] as const).map((type) => makeSshKey(dir, `id_${type}`, type));
  const agents = await loadSshAgents([{ id: 'files', paths: keys.map((k) => k.path) }]);
  const sock = await serve(agents, 'files');
  const listed = await sshAdd(sock, '-l');
  assert.equal(listed.code, 0, listed.out);
  for (const key of keys) {
    assert.ok(listed.out.includes(key.fingerprint), `${key.path} listed:\n${listed.out}`);
    const signed = await sshAdd(sock, '-T', key.publicPath);
    assert.equal(signed.code, 0, `${key.path}: ${signed.out}`);
  }
});

test('a bad --ssh source exits 2 before anything is uploaded', async () => {
  const missing = join(dir, 'nope');
  await assert.rejects(loadSshAgents([{ id: 'default', paths: [missing] }]), (err: ClientError) => err.exitCode === ExitCode.Usage && /--ssh default: cannot read ".*nope" \(ENOENT\)/.test(err.message));
  const junk = join(dir, 'junk');
  writeFileSync(junk, 'not a key\n');
  await assert.rejects(loadSshAgents([{ id: 'k', paths: [junk] }]), (err: ClientError) => err.exitCode === ExitCode.Usage && /--ssh k: ".*junk": not a private key/.test(err.message));
  const key = makeSshKey(dir, 'mixed');
  await assert.rejects(loadSshAgents([{ id: 'm', paths: [agent.socket, key.path] }]), /cannot be mixed/);
  await assert.rejects(loadSshAgents([{ id: 'p', paths: [key.publicPath] }]), /is a public key|not a private key/);
});
