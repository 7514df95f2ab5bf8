// SSH agent forwarding for RUN --mount=type=ssh (issues 17 and 20) on a real cluster: the step
// runs OpenSSH's own ssh-add (copied with its libraries from this machine into the build
// context, as busybox has no ssh client) against the socket the worker mounts; it can only list
// and sign if every hop works: worker socket -> Redis relay -> coordinating frontend -> the
// client (buildyard build --ssh, buildctl --ssh, docker buildx --ssh) -> a real ssh-agent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { ControlClient, SolveRequest, SshClientMessage, SshForwardClient, type SshServerMessage } from '@buildyard/proto';
import { Buildkitd } from '../conformance/lib/buildkit.js';
import { makeSshKey, referenceTools, startCluster, startSshAgent, type Cluster, type SshAgentService, type SshKey, appCommand } from '@buildyard/testkit';

const tools = referenceTools('buildctl', 'docker-buildx', 'buildkitd');
let cluster: Cluster;
let agent: SshAgentService;
let work: string;
let sysroot: string;
let buildkitAddr: string;

before(async () => {
  cluster = await startCluster({
    workers: 1, tenants: ['intruder'],
    env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  buildkitAddr = cluster.buildkit!;
  agent = await startSshAgent();
  work = mkdtempSync(join(tmpdir(), 'buildyard-ssh-e2e-'));
  // ssh-add and the libraries it loads, at their own paths, to be copied over the base image.
  sysroot = join(work, 'sysroot');
  const ldd = execFileSync('ldd', ['/usr/bin/ssh-add'], { encoding: 'utf8' });
  for (const file of ['/usr/bin/ssh-add', ...[...ldd.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1])]) {
    mkdirSync(join(sysroot, dirname(file)), { recursive: true });
    copyFileSync(file, join(sysroot, file));
  }
});
after(async () => {
  await cluster?.stop();
  await agent?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run { code: number; stdout: string; stderr: string }

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(command, args, { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function buildyard(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return run(process.execPath, appCommand('cli', ...args), {
    XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, SSH_AUTH_SOCK: agent.socket, ...env,
  });
}

function buildctl(args: string[], env: NodeJS.ProcessEnv = {}, addr = buildkitAddr): Promise<Run> {
  return run(tools.paths.buildctl, ['--addr', addr, ...args], { SSH_AUTH_SOCK: agent.socket, ...env });
}

function buildx(args: string[]): Promise<Run> {
  return run(tools.paths['docker-buildx'], args, { BUILDX_CONFIG: join(work, 'buildx'), SSH_AUTH_SOCK: agent.socket });
}

/**
 * A context whose step lists the forwarded agent's keys and has it sign with `key` (ssh-add -T
 * verifies the signature against the public key); the result is exported as /listed and /signed.
 */
function probeContext(key: SshKey, mount = 'type=ssh', statSocket = false): string {
  const dir = mkdtempSync(join(work, 'ctx-'));
  cpSync(sysroot, join(dir, 'sysroot'), { recursive: true });
  copyFileSync(key.publicPath, join(dir, 'key.pub'));
  writeFileSync(join(dir, 'Dockerfile'), [
    'ARG BASE',
    'FROM ${BASE} AS probe',
    'COPY sysroot/ /',
    'COPY key.pub /key.pub',
    `RUN --mount=${mount} ssh-add -l > /listed && ssh-add -T /key.pub && echo "signed $SSH_AUTH_SOCK" > /signed`,
    // The socket as the mount asks for it: owner, group, mode.
    ...(statSocket ? ['RUN --mount=type=ssh,uid=1000,gid=1001,mode=0640,target=/agent.sock stat -c "%u:%g:%a:%F" /agent.sock > /sockstat'] : []),
    'FROM scratch',
    `COPY --from=probe /listed /signed ${statSocket ? '/sockstat ' : ''}/`,
    '',
  ].join('\n'));
  return dir;
}

function assertForwarded(out: string, key: SshKey): void {
  assert.match(readFileSync(join(out, 'listed'), 'utf8'), new RegExp(key.fingerprint.replace(/[+/]/g, '\\$&')));
  assert.equal(readFileSync(join(out, 'signed'), 'utf8'), 'signed /run/buildkit/ssh_agent.0\n');
}

const base = () => `BASE=${cluster.busybox.reference}`;

test('buildyard build --ssh default: a step lists and signs with the client\'s ssh-agent ($SSH_AUTH_SOCK)', async () => {
  const out = join(work, 'out-cli-agent');
  const r = await buildyard(['build', '--progress', 'plain', '--no-cache', '--ssh', 'default', '--build-arg', base(), '-o', `type=local,dest=${out}`, probeContext(agent.key, 'type=ssh', true)]);
  assert.equal(r.code, 0, r.stderr);
  assertForwarded(out, agent.key);
  assert.equal(readFileSync(join(out, 'sockstat'), 'utf8'), '1000:1001:640:socket\n');
});

test('buildyard build --ssh ID=KEYFILE: a key file the CLI serves itself, under the id the mount names, with its uid and mode', async () => {
  const key = makeSshKey(work, `id_file_${randomBytes(3).toString('hex')}`);
  const out = join(work, 'out-cli-file');
  const context = probeContext(key, 'type=ssh,id=deploy,uid=0,mode=0600,required=true');
  const r = await buildyard(['build', '--progress', 'plain', '--no-cache', '--ssh', `deploy=${key.path}`, '--build-arg', base(), '-o', `type=local,dest=${out}`, context]);
  assert.equal(r.code, 0, r.stderr);
  assertForwarded(out, key);
  assert.ok(!readFileSync(join(out, 'listed'), 'utf8').includes(agent.key.fingerprint), 'only the named key file, not the agent');
});

test('a required ssh id the client does not forward fails the step with BuildKit\'s messages; an optional one is left out', async () => {
  const dir = mkdtempSync(join(work, 'ctx-required-'));
  writeFileSync(join(dir, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nRUN --mount=type=ssh,id=deploy,required=true true\n');
  const other = await buildyard(['build', '--progress', 'plain', '--no-cache', '--ssh', 'default', '--build-arg', base(), dir]);
  assert.equal(other.code, 1, other.stderr);
  assert.match(other.stderr, /unset ssh forward key deploy/);
  const none = await buildyard(['build', '--progress', 'plain', '--no-cache', '--build-arg', base(), dir]);
  assert.equal(none.code, 1, none.stderr);
  assert.match(none.stderr, /no SSH key "deploy" forwarded from the client/);
  writeFileSync(join(dir, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nRUN --mount=type=ssh,id=deploy,target=/agent test ! -e /agent\n');
  const optional = await buildyard(['build', '--progress', 'plain', '--no-cache', '--ssh', 'default', '--build-arg', base(), dir]);
  assert.equal(optional.code, 0, optional.stderr);
});

/** A dockerfile.v0 build of `context` with buildctl at `addr`, no cache, exported to `out` when given. */
function buildctlBuild(addr: string, context: string, extra: string[], out?: string): Promise<Run> {
  return buildctl(['build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${context}`, '--local', `dockerfile=${context}`,
    '--opt', `build-arg:${base()}`, '--opt', 'no-cache=', ...extra, ...(out ? ['--output', `type=local,dest=${out}`] : [])], {}, addr);
}

test('buildctl build --ssh through the BuildKit endpoint gives what the reference buildkitd gives', { skip: tools.missing ?? false }, async () => {
  const reference = await Buildkitd.start(cluster.registry.host);
  try {
    const context = probeContext(agent.key, 'type=ssh', true);
    const outputs: Record<string, string> = {};
    for (const [name, addr] of [['buildyard', buildkitAddr], ['buildkitd', reference.addr]]) {
      const out = join(work, `out-buildctl-${name}`);
      const r = await buildctlBuild(addr, context, ['--ssh', 'default'], out);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assertForwarded(out, agent.key);
      outputs[name] = ['listed', 'signed', 'sockstat'].map((f) => readFileSync(join(out, f), 'utf8')).join('');
    }
    assert.equal(outputs.buildyard, outputs.buildkitd, 'the step saw the same agent and socket');

    // An id the client does not forward, and no agent at all: the step fails in the same words.
    const dir = mkdtempSync(join(work, 'ctx-bk-required-'));
    writeFileSync(join(dir, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nRUN --mount=type=ssh,id=deploy,required=true true\n');
    for (const [extra, message] of [[['--ssh', 'default'], /unset ssh forward key deploy/], [[], /no SSH key "deploy" forwarded from the client/]] as const) {
      for (const addr of [buildkitAddr, reference.addr]) {
        const r = await buildctlBuild(addr, dir, [...extra]);
        assert.notEqual(r.code, 0, r.stderr);
        assert.match(r.stderr, message, `${addr}: ${r.stderr}`);
      }
    }
  } finally {
    await reference.stop();
  }
});

test('docker buildx build --ssh default through the BuildKit endpoint gives what it gives against the reference buildkitd', { skip: tools.missing ?? false }, async () => {
  const reference = await Buildkitd.start(cluster.registry.host);
  try {
    const context = probeContext(agent.key, 'type=ssh', true);
    const outputs: Record<string, string> = {};
    for (const [name, addr] of [['ssh-e2e', buildkitAddr], ['ssh-e2e-ref', reference.addr]]) {
      const created = await buildx(['create', '--name', name, '--driver', 'remote', addr]);
      assert.equal(created.code, 0, created.stderr);
      const out = join(work, `out-buildx-${name}`);
      const r = await buildx(['--builder', name, 'build', '--progress', 'plain', '--no-cache', '--ssh', 'default', '--build-arg', base(), '-o', `type=local,dest=${out}`, context]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      assertForwarded(out, agent.key);
      outputs[name] = ['listed', 'signed', 'sockstat'].map((f) => readFileSync(join(out, f), 'utf8')).join('');
    }
    assert.equal(outputs['ssh-e2e'], outputs['ssh-e2e-ref']);
  } finally {
    await reference.stop();
  }
});

test('the attacker: another tenant naming a live SSH session in its Solve is refused, and never reaches that session\'s agent', async () => {
  // The victim's session, open on its own connection with the default tenant's token.
  const victimMd = new Metadata();
  victimMd.set('authorization', `Bearer ${cluster.token}`);
  const victim = new SshForwardClient(cluster.address, credentials.createInsecure());
  const session = victim.session(victimMd);
  const sessionId = `victim-${randomBytes(8).toString('hex')}`;
  const opened: string[] = [];
  const ready = new Promise<void>((resolveReady, reject) => {
    session.on('data', (m: SshServerMessage) => { if (m.ready) resolveReady(); if (m.frame?.open) opened.push(m.frame.open); });
    session.on('error', reject);
  });
  session.write(SshClientMessage.fromPartial({ hello: { sessionId, ids: ['default'] } }));
  await ready;

  const intruderMd = new Metadata();
  intruderMd.set('authorization', `Bearer ${cluster.tokens.intruder}`);
  intruderMd.set('buildyard-ssh-session', sessionId);
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const call = control.solve(SolveRequest.fromPartial({
      dockerfile: Buffer.from(`FROM ${cluster.busybox.reference}\nRUN --mount=type=ssh,required=true true\n`), dockerfileName: 'Dockerfile', noCache: true,
    }), intruderMd);
    const err = await new Promise<ServiceError | undefined>((resolveErr) => { call.on('error', resolveErr); call.on('end', () => resolveErr(undefined)); call.on('data', () => {}); });
    assert.ok(err, 'the intruder\'s Solve is refused');
    assert.equal(err.code, 5, err.message);
    assert.match(err.details, /no SSH session victim-/);
    assert.deepEqual(opened, [], 'no connection was opened on the victim\'s session');
  } finally {
    control.close();
    session.end();
    victim.close();
  }
  assert.ok(existsSync(agent.socket));
});
