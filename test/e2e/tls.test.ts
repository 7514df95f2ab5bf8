// The frontend over TLS with client certificates (mTLS): a client with a certificate signed by
// the configured CA gets in; one without, or speaking plaintext, does not.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { ControlClient, type InfoResponse } from '@buildyard/proto';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { bearer } from './grpcClient.js';

const dir = mkdtempSync(join(tmpdir(), 'buildyard-tls-'));
const pem = (name: string) => readFileSync(join(dir, name));
let cluster: Cluster;

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

before(async () => {
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=buildyard-test-ca', '-keyout', 'ca.key', '-out', 'ca.pem');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const who of ['server', 'client']) {
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${who}`, '-keyout', `${who}.key`, '-out', `${who}.csr`);
    openssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', `${who}.pem`);
  }
  cluster = await startCluster({ workers: 1, env: { BUILDYARD_TLS_CERT: join(dir, 'server.pem'), BUILDYARD_TLS_KEY: join(dir, 'server.key'), BUILDYARD_TLS_CLIENT_CA: join(dir, 'ca.pem') } });
});
after(async () => {
  try {
    await cluster?.stop();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function info(creds: ChannelCredentials): Promise<InfoResponse> {
  const client = new ControlClient(cluster.address, creds);
  return new Promise<InfoResponse>((done, fail) => client.info({}, bearer(cluster.token), { deadline: Date.now() + 5_000 }, (err, res) => {
    client.close();
    if (err) fail(err); else done(res);
  }));
}

test('the frontend announces tls:// and answers a client with a CA-signed certificate', async () => {
  assert.match(cluster.frontend, /^tls:\/\/127\.0\.0\.1:\d+$/);
  const res = await info(credentials.createSsl(pem('ca.pem'), pem('client.key'), pem('client.pem')));
  assert.ok(res.workers >= 1);
});

test('a client without a certificate, or speaking plaintext, is refused', async () => {
  await assert.rejects(info(credentials.createSsl(pem('ca.pem'))));
  await assert.rejects(info(credentials.createInsecure()));
});
