// Issue 17: the BuildKit endpoint over TLS with client certificates, as buildkitd serves it; the
// client certificate's CN is the tenant. Real cluster (1 frontend, 1 worker), real buildctl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { buildkit, ControlClient, StatusRequest, type StatusResponse } from '@buildyard/proto';
import { referenceTools, startCluster, type Cluster } from '@buildyard/testkit';
import { bearer } from './grpcClient.js';

const tools = referenceTools('buildctl');
const buildctlBin = tools.paths.buildctl;
// Without BuildKit's reference clients there is nothing to drive the endpoint with.
const skip = tools.missing ?? false;
let cluster: Cluster;
let addr: string;
let pki: string;
/** Build contexts the tests made, removed with `pki` after them. */
const contexts: string[] = [];

/** A CA and certificates signed by it (openssl), in `pki`. */
function issue(name: string, cn: string, ca: string, ext = ''): void {
  const p = (f: string) => join(pki, f);
  execFileSync('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${cn}`], { stdio: 'ignore' });
  writeFileSync(p(`${name}.ext`), ext || 'extendedKeyUsage=clientAuth\n');
  execFileSync('openssl', ['x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${ca}.pem`), '-CAkey', p(`${ca}.key`), '-CAcreateserial', '-out', p(`${name}.pem`), '-days', '1', '-extfile', p(`${name}.ext`)], { stdio: 'ignore' });
}
function makeCa(name: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(pki, `${name}.key`), '-out', join(pki, `${name}.pem`), '-days', '1', '-subj', `/CN=${name}`], { stdio: 'ignore' });
}

before(async () => {
  if (skip) return;
  pki = mkdtempSync(join(tmpdir(), 'buildyard-bk-tls-'));
  makeCa('ca');
  makeCa('rogue');
  issue('server', '127.0.0.1', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  issue('client', 'default', 'ca');
  issue('other', 'other', 'ca');
  issue('stranger', 'nobody', 'ca');
  issue('forged', 'default', 'rogue');
  cluster = await startCluster({
    workers: 1,
    tenants: ['other'],
    env: {
      BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_TLS_CERT: join(pki, 'server.pem'),
      BUILDYARD_BUILDKIT_TLS_KEY: join(pki, 'server.key'), BUILDYARD_BUILDKIT_TLS_CLIENT_CA: join(pki, 'ca.pem'),
    },
  });
  addr = cluster.buildkit!;
});
after(async () => {
  try {
    await cluster?.stop();
  } finally {
    for (const dir of [pki, ...contexts]) if (dir) rmSync(dir, { recursive: true, force: true });
  }
});

function buildctl(cert: string | undefined, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const tls = ['--tlscacert', join(pki, 'ca.pem'), ...(cert ? ['--tlscert', join(pki, `${cert}.pem`), '--tlskey', join(pki, `${cert}.key`)] : [])];
  return new Promise((res) => execFile(buildctlBin, ['--addr', addr, ...tls, ...args], { timeout: 300_000 }, (err, stdout, stderr) =>
    res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })));
}

async function buildCount(): Promise<number> {
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const res = await new Promise<StatusResponse>((ok, fail) => control.status(StatusRequest.fromPartial({ limit: 100 }), bearer(cluster.token), (err, r) => (err ? fail(err) : ok(r))));
    return res.builds.length;
  } finally {
    control.close();
  }
}

test('a client certificate of a tenant builds; a missing, foreign-CA or unknown-tenant certificate is refused and nothing runs', { skip }, async () => {
  const ctx = mkdtempSync(join(tmpdir(), 'buildyard-bk-tls-ctx-'));
  contexts.push(ctx);
  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo over-tls-${Date.now()}\n`);
  const build = ['build', '--progress', 'plain', '--frontend', 'dockerfile.v0', '--local', `context=${ctx}`, '--local', `dockerfile=${ctx}`];

  const workers = await buildctl('client', 'debug', 'workers');
  assert.equal(workers.code, 0, workers.stderr);
  assert.ok(workers.stdout.includes(cluster.workers[0].id), workers.stdout);
  const ok = await buildctl('client', ...build);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /over-tls-\d+/);
  const builds = await buildCount();
  assert.ok(builds >= 1, 'the build ran for the tenant the certificate names');

  for (const cert of [undefined, 'forged', 'stranger']) {
    const refused = await buildctl(cert, ...build);
    assert.notEqual(refused.code, 0, `${cert ?? 'no certificate'} was refused`);
    if (cert === 'stranger') assert.match(refused.stderr, /client certificate CN "nobody" names no tenant/);
  }
  assert.equal(await buildCount(), builds, 'no refused client started a build');
});

test('a build ref names a build only within its tenant: another tenant\'s Status of it is NOT_FOUND, nothing of the build sent', { skip }, async () => {
  const ctx = mkdtempSync(join(tmpdir(), 'buildyard-bk-tls-ctx-'));
  contexts.push(ctx);
  const marker = `PRIVATE-${Date.now()}`;
  writeFileSync(join(ctx, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo ${marker}\n`);
  const refFile = join(ctx, 'ref');
  const built = await buildctl('client', 'build', '--progress', 'plain', '--ref-file', refFile, '--frontend', 'dockerfile.v0', '--local', `context=${ctx}`, '--local', `dockerfile=${ctx}`);
  assert.equal(built.code, 0, built.stderr);
  const ref = readFileSync(refFile, 'utf8').trim();

  // The other tenant, with its own certificate, within the minute the build's status lingers.
  const other = new buildkit.ControlClient(addr.replace(/^tcp:\/\//, ''), credentials.createSsl(readFileSync(join(pki, 'ca.pem')), readFileSync(join(pki, 'other.key')), readFileSync(join(pki, 'other.pem'))));
  try {
    const seen: string[] = [];
    const error = await new Promise<(Error & { code?: number }) | undefined>((resolve) => {
      const call = other.status(buildkit.StatusRequest.fromPartial({ Ref: ref }), { deadline: Date.now() + 120_000 });
      call.on('data', (s: buildkit.StatusResponse) => { for (const l of s.logs) seen.push(Buffer.from(l.msg).toString('utf8')); for (const v of s.vertexes) seen.push(v.name); });
      call.on('end', () => resolve(undefined));
      call.on('error', resolve);
    });
    assert.equal(error?.code, 5, `NOT_FOUND, got ${error?.message ?? 'a stream'}`);
    assert.ok(!seen.some((l) => l.includes(marker)), 'nothing of the build was sent');
  } finally {
    other.close();
  }
});
