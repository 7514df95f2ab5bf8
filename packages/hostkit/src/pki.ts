// A private CA with one server and one client certificate, as buildkitd's TLS wants them
// (--tlscacert/--tlscert/--tlskey on both sides): `buildyard up` makes one for its BuildKit
// endpoint, whose client certificate's CN names the tenant. node-forge writes the X.509
// structures; the RSA keys come from Node's own crypto (forge's pure-JS key generation is slow).
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';

export interface EndpointPki {
  /** The CA certificate both sides trust (buildctl --tlscacert, buildx cacert=). */
  caCert: string;
  /** The CA's key: kept (0600) to issue further client certificates. */
  caKey: string;
  serverCert: string;
  serverKey: string;
  /** The client certificate (buildctl --tlscert, buildx cert=) and its key (0600). */
  clientCert: string;
  clientKey: string;
}

interface Issued { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey }

function keyPair(): { privateKey: forge.pki.rsa.PrivateKey; publicKey: forge.pki.rsa.PublicKey } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
  return { privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

function issue(cn: string, validDays: number, extensions: object[], issuer?: Issued): Issued {
  const { privateKey, publicKey } = keyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  // Positive (high bit clear), unique serials: Go rejects negative ones.
  cert.serialNumber = `01${randomBytes(15).toString('hex')}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000); // tolerate a little clock skew
  cert.validity.notAfter = new Date(Date.now() + validDays * 24 * 3600_000);
  cert.setSubject([{ name: 'commonName', value: cn }]);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : cert.subject.attributes);
  cert.setExtensions([...extensions, { name: 'subjectKeyIdentifier' }, ...(issuer ? [{ name: 'authorityKeyIdentifier', keyIdentifier: issuer.cert.generateSubjectKeyIdentifier().getBytes() }] : [])]);
  cert.sign(issuer?.key ?? privateKey, forge.md.sha256.create());
  return { cert, key: privateKey };
}

/**
 * Writes ca.pem/ca-key.pem, server.pem/server-key.pem (valid for `hosts`: IP addresses and DNS
 * names) and client.pem/client-key.pem (CN `tenant`) into `dir`; keys are 0600.
 */
export async function generateEndpointPki(dir: string, opts: { tenant: string; hosts: string[]; validDays?: number }): Promise<EndpointPki> {
  const days = opts.validDays ?? 365;
  const ca = issue('buildyard local CA', days, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
  ]);
  const server = issue(opts.hosts[0] ?? 'localhost', days, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: opts.hosts.map((h) => (isIP(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
  ], ca);
  const client = issue(opts.tenant, days, [
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ], ca);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const paths: EndpointPki = {
    caCert: join(dir, 'ca.pem'), caKey: join(dir, 'ca-key.pem'), serverCert: join(dir, 'server.pem'), serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client.pem'), clientKey: join(dir, 'client-key.pem'),
  };
  const write = async (path: string, pem: string, mode: number) => { await writeFile(path, pem, { mode }); await chmod(path, mode); };
  await write(paths.caCert, forge.pki.certificateToPem(ca.cert), 0o644);
  await write(paths.caKey, forge.pki.privateKeyToPem(ca.key), 0o600);
  await write(paths.serverCert, forge.pki.certificateToPem(server.cert), 0o644);
  await write(paths.serverKey, forge.pki.privateKeyToPem(server.key), 0o600);
  await write(paths.clientCert, forge.pki.certificateToPem(client.cert), 0o644);
  await write(paths.clientKey, forge.pki.privateKeyToPem(client.key), 0o600);
  return paths;
}
