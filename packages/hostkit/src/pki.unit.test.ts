import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateEndpointPki } from './pki.js';

const work = mkdtempSync(join(tmpdir(), 'hostkit-pki-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('a CA, a server certificate for the endpoint address and a client certificate naming the tenant complete a mutual-TLS handshake', async () => {
  const pki = await generateEndpointPki(join(work, 'tls'), { tenant: 'alice', hosts: ['127.0.0.1', 'localhost'] });
  const ca = new X509Certificate(readFileSync(pki.caCert));
  const server = new X509Certificate(readFileSync(pki.serverCert));
  const client = new X509Certificate(readFileSync(pki.clientCert));
  assert.ok(ca.ca && server.verify(ca.publicKey) && client.verify(ca.publicKey), 'both are signed by the CA');
  assert.match(server.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  assert.match(client.subject, /CN=alice/);
  for (const key of [pki.caKey, pki.serverKey, pki.clientKey]) assert.equal(statSync(key).mode & 0o777, 0o600, `${key} is private`);

  const srv = createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey), ca: readFileSync(pki.caCert), requestCert: true, rejectUnauthorized: true },
    (s) => s.end(String((s.getPeerCertificate().subject as { CN?: string }).CN)));
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  try {
    const port = (srv.address() as { port: number }).port;
    const peer = await new Promise<string>((ok, fail) => {
      const s: TLSSocket = connect({ host: '127.0.0.1', port, ca: readFileSync(pki.caCert), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) });
      let data = '';
      s.on('data', (d) => { data += d; }).on('end', () => ok(data)).on('error', fail);
    });
    assert.equal(peer, 'alice', 'the server verified the client certificate and read its tenant');
  } finally {
    srv.close();
  }
});
