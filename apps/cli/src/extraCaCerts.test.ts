// bin/buildyard hands NODE_EXTRA_CA_CERTS over so that Node 20 does not read the CA store at
// every start, and bin/extraCaCerts.js applies the certificates at the first TLS connection.
// What must hold: whatever Node would have trusted with the variable is trusted (the builder over
// gRPC, fetch, https, tls), a caller's own `ca` still replaces the defaults, an unreadable file
// is reported as Node reports it, and processes the CLI starts get the variable back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFakeBuilder, type FakeBuilder } from './fakeBuilder.test-util.js';
import { runProcess } from './runProcess.test-util.js';

const appDir = resolve(fileURLToPath(import.meta.url), '../..');
const launcher = join(appDir, 'bin/buildyard');
let dir: string;
let https: Server;
let httpsUrl: string;
let builder: FakeBuilder;

/** A CA (ca.pem), another one (other.pem), and a certificate for 127.0.0.1 signed by the first. */
function makeCertificates(): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  for (const ca of ['ca', 'other']) openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=buildyard-test-${ca}`, '-keyout', `${ca}.key`, '-out', `${ca}.pem`);
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr');
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > san.ext'], { cwd: dir });
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'san.ext', '-out', 'server.pem');
  // Signed by the same CA, for another address: a server presenting it at 127.0.0.1 is not 127.0.0.1.
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.2\\n" > other-san.ext'], { cwd: dir });
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'other-san.ext', '-out', 'elsewhere.pem');
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'buildyard-extra-ca-'));
  makeCertificates();
  const tls = { cert: await readFile(join(dir, 'server.pem')), key: await readFile(join(dir, 'server.key')) };
  https = createServer(tls, (_req, res) => res.end('trusted'));
  await new Promise<void>((ok) => https.listen(0, '127.0.0.1', ok));
  httpsUrl = `https://127.0.0.1:${(https.address() as AddressInfo).port}/`;
  builder = await startFakeBuilder({ tls, events: [{ timestampMs: 1, result: { buildId: 'b-1', digest: 'sha256:feedface', images: [], pushed: [], metadata: {}, verticesTotal: 0, verticesCached: 0, durationMs: 1 } }] });
  await mkdir(join(dir, 'ctx'));
  await writeFile(join(dir, 'ctx', 'Dockerfile'), 'FROM scratch\n');
});
after(async () => {
  https?.close();
  await builder?.stop();
  await rm(dir, { recursive: true, force: true });
});

const run = (command: string, args: string[], env: NodeJS.ProcessEnv) => runProcess(command, args, { cwd: dir, env });

/** The environment of a user whose NODE_EXTRA_CA_CERTS is `ca` (none: unset), with a home of its own. */
function userEnv(ca: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache'), BUILDYARD_BUILDER: '', BUILDYARD_TOKEN: '' };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.BUILDYARD_DEFERRED_CA_CERTS;
  // gRPC's own roots file replaces Node's store (and so the extra certificates) for the builder.
  delete env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH;
  if (ca !== undefined) env.NODE_EXTRA_CA_CERTS = ca;
  return env;
}

test('a builder whose certificate only NODE_EXTRA_CA_CERTS trusts is reached through bin/buildyard', async () => {
  const build = ['build', '--builder', builder.endpoint, '--progress', 'plain', 'ctx'];
  const trusted = await run(launcher, build, userEnv(join(dir, 'ca.pem')));
  assert.equal(trusted.code, 0, trusted.stderr);
  assert.match(trusted.stdout + trusted.stderr, /sha256:feedface/);
  // An IP address is no TLS server name (RFC 6066): none is sent, so Node has nothing to warn of.
  assert.doesNotMatch(trusted.stderr, /DEP0123|ServerName/);
  // Without the variable, or with another CA in it, the same certificate is refused.
  for (const ca of [undefined, join(dir, 'other.pem')]) {
    const refused = await run(launcher, build, userEnv(ca));
    assert.notEqual(refused.code, 0, `NODE_EXTRA_CA_CERTS=${ca}: the builder was trusted`);
  }
});

test('Node does not read the file at start: an unreadable one is reported at the first TLS connection, as Node words it', async () => {
  const missing = join(dir, 'no-such-ca.pem');
  const version = await run(launcher, ['--version'], userEnv(missing));
  assert.equal(version.code, 0, version.stderr);
  assert.equal(version.stderr, '', 'Node read NODE_EXTRA_CA_CERTS at start');
  const build = await run(launcher, ['build', '--builder', builder.endpoint, '--progress', 'plain', 'ctx'], userEnv(missing));
  assert.notEqual(build.code, 0);
  assert.match(build.stderr, /Warning: Ignoring extra certs from `[^`]*no-such-ca\.pem`, load failed: ENOENT/);
  assert.equal(build.stderr.match(/Ignoring extra certs/g)?.length, 1, 'reported once');
});

test('fetch, https and tls trust the deferred certificates; a caller\'s own ca still replaces them; child processes get the variable back', async () => {
  const script = `
const tls = require('node:tls');
require(${JSON.stringify(join(appDir, 'bin/extraCaCerts.js'))}).deferExtraCaCerts(process.env.BUILDYARD_DEFERRED_CA_CERTS);
const url = new URL(${JSON.stringify(httpsUrl)});
const viaTls = (options) => new Promise((ok) => {
  const s = tls.connect({ host: url.hostname, port: Number(url.port), ...options }, () => { s.end(); ok('ok'); });
  s.on('error', (e) => ok(e.code));
});
(async () => {
  const out = {};
  out.fetch = await fetch(url).then((r) => r.text(), (e) => e.cause?.code ?? e.message);
  out.https = await new Promise((ok) => require('node:https').get(url, (r) => { r.resume(); ok(r.statusCode); }).on('error', (e) => ok(e.code)));
  out.tls = await viaTls({});
  out.ownCa = await viaTls({ ca: [require('node:fs').readFileSync(${JSON.stringify(join(dir, 'other.pem'))})] });
  out.childSees = require('node:child_process').execFileSync(process.execPath, ['-p', 'process.env.NODE_EXTRA_CA_CERTS + " " + process.env.BUILDYARD_DEFERRED_CA_CERTS']).toString().trim();
  console.log(JSON.stringify(out));
})();`;
  const ca = join(dir, 'ca.pem');
  const env = userEnv(undefined);
  env.BUILDYARD_DEFERRED_CA_CERTS = ca;
  const r = await run(process.execPath, ['-e', script], env);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { fetch: 'trusted', https: 200, tls: 'ok', ownCa: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', childSees: `${ca} undefined` });
});

test('without a server name for an IP address the certificate is still checked against it: one for another address is refused', async (t) => {
  const elsewhere = await startFakeBuilder({ tls: { cert: await readFile(join(dir, 'elsewhere.pem')), key: await readFile(join(dir, 'server.key')) }, events: [] });
  t.after(() => elsewhere.stop());
  const r = await run(launcher, ['build', '--builder', elsewhere.endpoint, '--progress', 'plain', 'ctx'], userEnv(join(dir, 'ca.pem')));
  assert.notEqual(r.code, 0, 'a certificate for 127.0.0.2 was accepted at 127.0.0.1');
  assert.match(r.stderr, /IP: 127\.0\.0\.1 is not in the cert's list|ERR_TLS_CERT_ALTNAME_INVALID|altnames/);
});
