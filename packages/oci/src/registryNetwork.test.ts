// A build names its registries (FROM 127.0.0.1:6379/x): with a network policy, the client opens
// connections only to addresses the policy allows, for the registry itself, each redirect hop
// and the token realm, unless the operator trusts the registry.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { seededRegistryFixture } from '@buildyard/testkit';
import { RegistryClient, RegistryError } from './RegistryClient.js';
import { RegistryNetwork, TenantRegistryNetworks } from './addressPolicy.js';
import { sha256Digest } from './digest.js';

const fx = seededRegistryFixture('oci-registry-network-test');

/** An attacker's endpoint: counts the connections it gets and answers every request with `answer`. */
interface Endpoint { host: string; connections: number; requests: string[]; close(): Promise<void> }
const endpoints: Endpoint[] = [];
after(async () => { for (const e of endpoints) await e.close(); });

async function endpoint(address: string, answer: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_, res) => { res.writeHead(404).end('{"secret":"internal service body"}'); }): Promise<Endpoint> {
  const server = http.createServer((req, res) => { e.requests.push(`${req.method} ${req.url}`); answer(req, res); });
  const sockets = new Set<Socket>();
  server.on('connection', (s) => { e.connections++; sockets.add(s); s.on('close', () => sockets.delete(s)); });
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const e: Endpoint = {
    host: `${address}:${(server.address() as AddressInfo).port}`, connections: 0, requests: [],
    close: () => new Promise<void>((resolve) => { for (const s of sockets) s.destroy(); server.close(() => resolve()); }),
  };
  endpoints.push(e);
  return e;
}

const refuseLoopback = (address: string) => (address.startsWith('127.') ? 'test policy' : undefined);
const refuse127002 = (address: string) => (address === '127.0.0.2' ? 'test policy' : undefined);
const client = (refuse: (a: string) => string | undefined, trusted: string[] = [], network = new RegistryNetwork(refuse, trusted)) =>
  new RegistryClient({ dockerConfig: false, backoffMs: 5, network });

async function refusal(p: Promise<unknown>): Promise<RegistryError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof RegistryError, `expected a RegistryError, got ${String(err)}`);
  return err;
}

describe('registries a build names obey its network policy', () => {
  test('a registry on a refused address is never connected to; the error is one line naming the address and the setting', async () => {
    const service = await endpoint('127.0.0.1');
    const err = await refusal(client(refuseLoopback).getManifest(`${service.host}/x:1`));
    assert.equal(service.connections, 0);
    assert.match(err.message, new RegExp(`^registry ${service.host.replace(/\./g, '\\.')}: GET manifest .*: the address 127\\.0\\.0\\.1 is not reachable from builds \\(test policy\\); .*registry\\.trusted$`));
    assert.doesNotMatch(err.message, /\n|secret/);
  });

  test('a name is resolved and vetted before the connect (localhost is loopback)', async () => {
    const service = await endpoint('127.0.0.1');
    const port = service.host.split(':')[1];
    const err = await refusal(client(refuseLoopback).headManifest(`localhost:${port}/x:1`));
    assert.equal(service.connections, 0);
    assert.match(err.message, /the address 127\.0\.0\.1 is not reachable from builds \(test policy\)/);
  });

  test('a redirect to a refused address is not followed, and not retried', async () => {
    const hidden = await endpoint('127.0.0.2');
    const front = await endpoint('127.0.0.1', (req, res) => { res.writeHead(307, { location: `http://${hidden.host}${req.url}` }).end(); });
    const err = await refusal(client(refuse127002).getManifest(`${front.host}/x:1`));
    assert.match(err.message, /the address 127\.0\.0\.2 is not reachable from builds/);
    assert.equal(hidden.connections, 0);
    assert.deepEqual(front.requests, ['GET /v2/x/manifests/1']);
  });

  test('a token realm on a refused address is not asked', async () => {
    const hidden = await endpoint('127.0.0.2');
    const front = await endpoint('127.0.0.1', (_, res) => { res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${hidden.host}/token",service="x"` }).end(); });
    const err = await refusal(client(refuse127002).getManifest(`${front.host}/x:1`));
    assert.match(err.message, /token from 127\.0\.0\.2.*the address 127\.0\.0\.2 is not reachable from builds/);
    assert.equal(hidden.connections, 0);
  });

  test('a trusted registry is reached on a refused address; another registry on the same address is not', async () => {
    const trusted = client(refuseLoopback, [fx.registry.host]);
    const head = await trusted.headManifest(fx.busybox.reference);
    assert.equal(head?.digest, fx.busybox.indexDigest);
    const other = await endpoint('127.0.0.1');
    await refusal(trusted.getManifest(`${other.host}/x:1`));
    assert.equal(other.connections, 0);
  });

  test('a trusted registry is trusted where it is, not where it points: its redirect or token realm to a refused address is not followed', async () => {
    const hidden = await endpoint('127.0.0.1');
    const redirecting = await endpoint('127.0.0.1', (req, res) => { res.writeHead(307, { location: `http://${hidden.host}${req.url}` }).end(); });
    const realm = await endpoint('127.0.0.1', (_, res) => { res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${hidden.host}/token",service="x"` }).end(); });
    const trusting = client(refuseLoopback, [redirecting.host, realm.host]);
    assert.match((await refusal(trusting.getManifest(`${redirecting.host}/x:1`))).message, /the address 127\.0\.0\.1 is not reachable from builds \(test policy\)/);
    assert.match((await refusal(trusting.getManifest(`${realm.host}/x:1`))).message, /token from 127\.0\.0\.1.*not reachable from builds/);
    assert.equal(hidden.connections, 0);
    assert.deepEqual([redirecting.requests, realm.requests], [['GET /v2/x/manifests/1'], ['GET /v2/x/manifests/1']], 'the trusted registries themselves were asked');
  });

  test('an allowed address is reached as without a policy: pulls, and pushes (an upload starts with an empty POST)', async () => {
    const allowed = client(refuse127002);
    const head = await allowed.headManifest(fx.busybox.reference);
    assert.equal(head?.digest, fx.busybox.indexDigest);
    const data = Buffer.from(`pushed under a policy ${process.pid}`);
    const pushed = await allowed.pushBlob(`${fx.registry.host}/network-test/blob`, { digest: sha256Digest(data), size: data.length }, data);
    assert.equal(pushed.result, 'uploaded');
  });

  test('a network makes one vetted fetch (one connection pool) for every untrusted registry, another for the trusted ones', async () => {
    const shared = new RegistryNetwork(refuse127002, [fx.registry.host]);
    const vetted = await shared.fetchFor('127.0.0.1:1');
    assert.notEqual(vetted, fetch);
    assert.equal(await shared.fetchFor('example.com'), vetted);
    const trusted = await shared.fetchFor(fx.registry.host);
    assert.ok(trusted !== vetted && trusted !== fetch);
    assert.equal(await shared.fetchFor(fx.registry.host.toUpperCase()), trusted);
    assert.notEqual(await new RegistryNetwork(refuse127002, []).fetchFor('127.0.0.1:1'), vetted, 'another network has its own pool');
  });
});

test('TenantRegistryNetworks keeps one network per tenant until it is maxAgeMs old', () => {
  const made: string[] = [];
  const make = (tenant: string) => { made.push(tenant); return new RegistryNetwork(refuse127002, []); };
  const kept = new TenantRegistryNetworks(make);
  assert.equal(kept.get('alice'), kept.get('alice'));
  assert.notEqual(kept.get('alice'), kept.get('bob'));
  assert.deepEqual(made, ['alice', 'bob']);
  const renewed = new TenantRegistryNetworks(make, 0);
  assert.notEqual(renewed.get('carol'), renewed.get('carol'));
});
