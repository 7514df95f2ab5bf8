// buildx's flags of `buildyard build` and the errors users meet first (issue 20), run through
// the real CLI against a real cluster; the pushed index is read back with skopeo.
// --add-host and --allow have their end-to-end test in cli.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster, type Cluster, appCommand, testWorkDir } from '@buildyard/testkit';

const repoRoot = resolve(import.meta.dirname, '../..');
let cluster: Cluster;
let work: string;
let context: string;

before(async () => {
  cluster = await startCluster({ workers: 1 });
  work = testWorkDir('buildyard-cliflags-e2e-');
  context = mkdtempSync(join(work, 'ctx-'));
  // No RUN: a second platform needs no emulation, so the test measures the flags, not qemu.
  writeFileSync(join(context, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nCOPY hello /hello\n');
  writeFileSync(join(context, 'hello'), `hello ${process.pid}\n`);
});
after(async () => { await cluster?.stop(); });

function cli(args: string[], env: Record<string, string> = {}): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, appCommand('cli', ...args), {
    cwd: work, encoding: 'utf8', timeout: 180_000,
    env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, ...env },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const skopeoRaw = (ref: string, ...extra: string[]) => JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', ...extra, `docker://${ref}`], { encoding: 'utf8' }));
const base = () => `BASE=${cluster.busybox.reference}`;

test('--iidfile writes the pushed index digest; --annotation puts index, manifest and per-platform annotations where buildx does', () => {
  const image = `${cluster.registry.host}/e2e/flags:annotated`;
  const iid = join(work, 'iid');
  const run = cli(['build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64', '--build-arg', base(), '-t', image, '--push', '--iidfile', iid,
    '--annotation', 'index:org.opencontainers.image.description=an index', '--annotation', 'org.example.everywhere=yes',
    '--annotation', 'manifest[linux/arm64]:org.example.only=arm', context]);
  assert.equal(run.status, 0, run.stderr);
  const index = skopeoRaw(image);
  const pushed = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${image}`], { encoding: 'utf8' })).Digest;
  assert.match(readFileSync(iid, 'utf8'), /^sha256:[0-9a-f]{64}$/, 'the digest alone, no newline');
  assert.equal(readFileSync(iid, 'utf8'), pushed);
  assert.deepEqual(index.annotations, { 'org.opencontainers.image.description': 'an index' });
  for (const arch of ['amd64', 'arm64']) {
    const entry = index.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === arch);
    const manifest = skopeoRaw(`${image.replace(/:[^:/]+$/, '')}@${entry.digest}`);
    const want: Record<string, string> = { 'org.example.everywhere': 'yes', ...(arch === 'arm64' ? { 'org.example.only': 'arm' } : {}) };
    assert.deepEqual(manifest.annotations, want, `${arch} manifest annotations`);
  }
});

test('--iidfile of a single-platform build is its manifest digest; index: annotations need several platforms (exit 2, before the upload)', () => {
  const image = `${cluster.registry.host}/e2e/flags:single`;
  const iid = join(work, 'iid-single');
  // --provenance=false: without buildx's default provenance one platform pushes a plain manifest.
  const run = cli(['build', '-q', '--platform', 'linux/amd64', '--provenance=false', '--build-arg', base(), '-t', image, '--push', '--iidfile', iid, context]);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(readFileSync(iid, 'utf8'), run.stdout.trim());
  assert.equal(skopeoRaw(image).mediaType, 'application/vnd.oci.image.manifest.v1+json');

  const bad = cli(['build', '--platform', 'linux/amd64', '--provenance=false', '--annotation', 'index:k=v', context]);
  assert.equal(bad.status, 2, bad.stderr);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /--annotation "index:k=v": a single-platform build/);
  const malformed = cli(['build', '--annotation', 'novalue', context]);
  assert.equal(malformed.status, 2);
  assert.match(malformed.stderr, /--annotation "novalue": write KEY=VALUE/);
});

test('a malformed --shm-size or --ulimit is refused in one line with exit 2 before the upload', () => {
  for (const [args, message] of [[['--shm-size', 'lots'], /^ERROR: --shm-size: invalid shm size "lots"/m], [['--ulimit', 'files=1'], /^ERROR: --ulimit: invalid ulimit type: files; one of core, /m]] as const) {
    const run = cli(['build', ...args, context]);
    assert.equal(run.status, 2, run.stderr);
    assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
    assert.match(run.stderr, message);
  }
});

test('errors met first: no misleading did-you-mean, one hint for a missing token, du --verbose details', () => {
  // No agent here: --ssh default is refused before the upload (its forwarding is sshForward.test.ts's).
  const ssh = cli(['build', '--ssh', 'default', context], { SSH_AUTH_SOCK: '' });
  assert.equal(ssh.status, 2);
  assert.match(ssh.stderr, /--ssh default: SSH_AUTH_SOCK is not set/);
  assert.doesNotMatch(ssh.stderr, /Did you mean/, '--ssh is not a typo of --push');
  const typo = cli(['build', '--platfrom', 'linux/amd64', context]);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /\(Did you mean --platform\?\)/);

  const noToken = cli(['du'], { BUILDYARD_TOKEN: '' });
  assert.equal(noToken.status, 3, noToken.stderr);
  assert.match(noToken.stderr, /refused the credentials: missing bearer token; set BUILDYARD_TOKEN/);
  assert.equal(noToken.stderr.match(/BUILDYARD_TOKEN/g)?.length, 1, noToken.stderr);

  const build = cli(['build', '-q', '--platform', 'linux/amd64', '--build-arg', base(), context]);
  assert.equal(build.status, 0, build.stderr);
  const du = cli(['du']);
  const verbose = cli(['du', '--verbose']);
  assert.equal(verbose.status, 0, verbose.stderr);
  assert.notEqual(verbose.stdout, du.stdout);
  assert.match(verbose.stdout, /^ID:\s+\S+/m);
  assert.match(verbose.stdout, /^Description:\s+\S+/m);
  assert.match(verbose.stdout, /^Usage count:\s+\d+/m);
  assert.match(verbose.stdout, /^Total:/m);
});

test('version prints the client\'s version and, with --builder, the frontend\'s; ls has docker buildx ls\'s columns', () => {
  const version = cli(['version', '--builder', cluster.frontend]);
  assert.equal(version.status, 0, version.stderr);
  const lines = version.stdout.trim().split('\n');
  assert.match(lines[0], /^buildyard v\d+\.\d+\.\d+/);
  assert.match(lines[1], new RegExp(`^builder \\S+ \\(${cluster.frontend.replace(/[/.]/g, '\\$&')}\\) \\S+$`));
  const ls = cli(['ls']);
  assert.equal(ls.status, 0, ls.stderr);
  assert.match(ls.stdout, /^NAME\/NODE +DRIVER\/ENDPOINT +STATUS +BUILDKIT +PLATFORMS$/m);
  assert.match(ls.stdout, /^ {2}worker-1 +ready +\S+ +linux\/amd64/m);
});

/** The rows of docs/ci.md's exit-code table: exit code, and the command as a user types it. */
function exitCodeTable(): { exit: number; when: string; env: Record<string, string>; args: string[]; interrupt: boolean }[] {
  const doc = readFileSync(join(repoRoot, 'docs/ci.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| (\d+) \| ([^|]+) \| `([^`]+)`( then Ctrl-C)? \|$/gm)];
  return rows.map(([, exit, when, command, ctrlC]) => {
    const words = command.split(/\s+/);
    const env: Record<string, string> = {};
    while (/^[A-Z_]+=/.test(words[0])) { const [k, ...v] = words.shift()!.split('='); env[k] = v.join('='); }
    assert.equal(words.shift(), 'buildyard', command);
    return { exit: Number(exit), when: when.trim(), env, args: words, interrupt: !!ctrlC };
  });
}

/** Runs the CLI without blocking the event loop; SIGINT once `interruptOn` shows on stderr. */
function cliAsync(args: string[], env: Record<string, string>, cwd: string, interruptOn?: RegExp): Promise<{ status: number; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, appCommand('cli', ...args), {
      cwd, env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, ...env },
    });
    let stderr = '';
    let sent = false;
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (interruptOn && !sent && interruptOn.test(stderr)) { sent = true; child.kill('SIGINT'); }
    });
    child.stdout.resume();
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ status: code ?? -1, stderr }));
  });
}

test('docs/ci.md\'s exit-code table: every row, run as written, exits with its code; usage errors are one line before any upload', async () => {
  const dir = mkdtempSync(join(work, 'exit-codes-'));
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nCOPY Dockerfile /\n`);
  writeFileSync(join(dir, 'fail.Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN exit 1\n`);
  writeFileSync(join(dir, 'slow.Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo started-${process.pid} && sleep 600\n`);
  const rows = exitCodeTable();
  assert.deepEqual([...new Set(rows.map((r) => r.exit))], [0, 1, 2, 3, 130], 'the table covers every exit code');
  for (const row of rows) {
    // Plain progress, so the test can see whether the context upload started.
    const run = await cliAsync([row.args[0], '--progress=plain', ...row.args.slice(1)], row.env, dir, row.interrupt ? new RegExp(`started-${process.pid}`) : undefined);
    assert.equal(run.status, row.exit, `${row.when}: ${run.stderr}`);
    if (row.exit === 2) {
      assert.equal(run.stderr.trim().split('\n').length, 1, `${row.when}: one line: ${run.stderr}`);
      assert.doesNotMatch(run.stderr, /load build context/, `${row.when}: refused before the upload`);
    }
  }
});
