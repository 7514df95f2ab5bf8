// ADD <url> is fetched by the worker process itself, outside any RUN step's firewall; as the
// attacker writes it, it aims at what RUN cannot reach (issue 23's protected set): Redis, the
// registry, the worker host, a cloud-metadata address, a denied service, or a public URL that
// redirects to loopback. Each is refused before any connection with one clear line naming the
// address and the setting; a URL out in the world (the test's "outside" namespace) still
// downloads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { solve } from '../grpcClient.js';
import { useOutsideCluster } from './outsideCluster.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster and a network namespace)';

const env = useOutsideCluster('add-url', !skip, { cluster: (outside) => ({
  workers: 1, tenants: ['alice', 'bob'], env: { BUILDYARD_WORKER_EGRESS_DENY: outside.denied, BUILDYARD_WORKER_EGRESS_TENANT_DENY: `bob=${outside.web}` },
}) });

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Builds `ADD <url>` on line 2; answers the build's error message (undefined: it passed). */
async function add(name: string, url: string, token?: string): Promise<{ error?: string; logs: string }> {
  const dir = env.contexts.make(name, `FROM ${env.cluster.busybox.reference}\nADD ${url} /fetched\nRUN cat /fetched\n`);
  const outcome = await solve(env.cluster, dir, { platforms: ['linux/amd64'], noCache: true }, token ? { token } : undefined);
  return { error: outcome.error?.message, logs: outcome.logs };
}

function assertRefused(error: string | undefined, url: string, address: string, by = 'worker.egress', redirectedTo?: string): void {
  assert.ok(error, `ADD ${url} was fetched`);
  const hop = redirectedTo ? ` redirected to ${escape(redirectedTo)}:` : '';
  assert.match(error, new RegExp(`ADD ${escape(url)} at line 2:${hop} the address ${escape(address)} is not reachable from builds \\(${escape(by)}\\)`));
  assert.ok(!error.includes('\n'), 'one line');
}

test('ADD of Redis\'s and the registry\'s URLs is refused', { skip }, async () => {
  const redis = new URL(env.cluster.redis.url);
  const redisUrl = `http://${redis.host}/`;
  assertRefused((await add('redis', redisUrl)).error, redisUrl, redis.hostname);
  const registryUrl = `http://${env.cluster.registry.host}/v2/_catalog`;
  assertRefused((await add('registry', registryUrl)).error, registryUrl, env.cluster.registry.host.split(':')[0]!);
  // By name too: the name is resolved and its address vetted.
  const byName = `http://localhost:${redis.port}/`;
  assertRefused((await add('redis-name', byName)).error, byName, '127.0.0.1');
});

test('ADD of the worker host\'s own address and of a metadata address is refused', { skip }, async () => {
  const hostUrl = `http://${env.outside.host.address}:${env.outside.host.port}/`;
  assertRefused((await add('worker-host', hostUrl)).error, hostUrl, env.outside.host.address);
  const metadataUrl = `http://${env.outside.metadata}/latest/meta-data/`;
  const metadata = await add('metadata', metadataUrl);
  assertRefused(metadata.error, metadataUrl, env.outside.metadata);
  assert.doesNotMatch(metadata.logs, /METADATA-SERVICE|WORKER-HOST/);
});

test('a public URL redirecting to 127.0.0.1 is refused at that hop', { skip }, async () => {
  const target = `http://127.0.0.1:${env.cluster.registry.host.split(':')[1]}/v2/_catalog`;
  const url = `http://${env.outside.web}/redirect?to=${encodeURIComponent(target)}`;
  assertRefused((await add('redirect', url)).error, url, '127.0.0.1', 'worker.egress', target);
});

test('the operator\'s and the tenant\'s deny lists apply to ADD as to RUN', { skip }, async () => {
  const denied = `http://${env.outside.denied}/`;
  assertRefused((await add('denied', denied)).error, denied, env.outside.denied, 'worker.egress.deny');
  const web = `http://${env.outside.web}/bob.txt`;
  assertRefused((await add('tenant-denied', web, env.cluster.tokens.bob)).error, web, env.outside.web, 'worker.egress.tenantDeny');
});

test('a private address (where a frontend, a pod or the LAN lives) is refused with no list naming it', { skip }, async () => {
  const url = `http://${env.outside.private.denied}/`;
  const got = await add('private', url);
  assertRefused(got.error, url, env.outside.private.denied, 'worker.egress.denyPrivate, a private range; worker.egress.allow opens an address');
  assert.doesNotMatch(got.logs, /OUTSIDE/);
});

test('an allowed URL out in the world still downloads', { skip }, async () => {
  const url = `http://${env.outside.web}/hello.txt`;
  const got = await add('outside', url, env.cluster.tokens.alice);
  assert.equal(got.error, undefined, got.error);
  assert.match(got.logs, new RegExp(`hello from outside ${env.outside.nonce}`));
});
