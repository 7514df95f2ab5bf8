// A build names its registries, and the builder connects to them itself, outside any RUN step's
// firewall: as the attacker writes it, `FROM 127.0.0.1:<redis port>/x`, `COPY --from=<an
// internal service>/img`, `--push` to one, `--cache-from` one. Each is refused before any
// connection, with one line naming the address and the setting, as ADD <url> is; the cluster's
// own registry (trusted by the operator, though it lives on loopback) still serves builds.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { solve } from '../grpcClient.js';
import { clusterFixture } from './clusterFixture.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster)';
const env = clusterFixture({ workers: 1 }, 'registries');

/** An internal service on the worker host's loopback: counts the connections it gets. */
let connections = 0;
const internal = http.createServer((_, res) => { res.writeHead(404).end('{"internal":"body"}'); });
internal.on('connection', () => { connections++; });
const listening = new Promise<string>((resolve) => internal.listen(0, '127.0.0.1', () => resolve(`127.0.0.1:${(internal.address() as AddressInfo).port}`)));
after(() => new Promise<void>((resolve) => { internal.closeAllConnections(); internal.close(() => resolve()); }));

function assertRefused(error: string | undefined, host: string): void {
  assert.ok(error, 'the build passed');
  assert.match(error, new RegExp(`registry ${host.replace(/\./g, '\\.')}: .*the address 127\\.0\\.0\\.1 is not reachable from builds \\(worker\\.egress\\)`));
  assert.ok(!error.includes('\n') && error.length < 600, `one line: ${error}`);
  assert.doesNotMatch(error, /internal/);
}

test('FROM and COPY --from of an image on Redis\'s or an internal service\'s port are refused, with no connection', { skip }, async () => {
  const service = await listening;
  const redis = new URL(env.cluster.redis.url).host;
  for (const [name, host, dockerfile] of [
    ['from-redis', redis, `FROM ${redis}/x:1\nRUN true\n`],
    ['from-service', service, `FROM ${service}/x:1\n`],
    ['copy-from', service, `FROM ${env.cluster.busybox.reference}\nCOPY --from=${service}/img:1 /etc/passwd /stolen\n`],
  ] as const) {
    const outcome = await solve(env.cluster, env.context(name, dockerfile), { platforms: ['linux/amd64'] });
    assertRefused(outcome.error?.message, host);
  }
  assert.equal(connections, 0);
});

test('a push or a cache import aimed at an internal service is refused, with no connection', { skip }, async () => {
  const service = await listening;
  const dir = env.context('push', `FROM ${env.cluster.busybox.reference}\nRUN echo built > /out\n`);
  const pushed = await solve(env.cluster, dir, { platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name: `${service}/app:1`, push: 'true' } }] });
  assertRefused(pushed.error?.message, service);
  const imported = await solve(env.cluster, dir, { platforms: ['linux/amd64'], cacheFrom: [{ type: 'registry', attrs: { ref: `${service}/cache:1` } }] });
  // A cache that cannot be read is a warning, as in BuildKit: the build itself runs.
  assert.equal(imported.error, undefined, imported.error?.message);
  const warning = imported.events.find((e) => e.warning?.message.startsWith(`cache import from ${service}/cache:1 skipped`))?.warning?.message;
  assert.match(warning ?? '', /the address 127\.0\.0\.1 is not reachable from builds/);
  assert.equal(connections, 0);
});

test('the cluster\'s own registry, trusted by the operator on loopback, still serves base images and pushes', { skip }, async () => {
  const dir = env.context('trusted', `FROM ${env.cluster.busybox.reference}\nRUN echo built > /out\n`);
  const name = `${env.cluster.registry.host}/registries-test/app:1`;
  const outcome = await solve(env.cluster, dir, { platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name, push: 'true' } }] });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const res = await fetch(`http://${env.cluster.registry.host}/v2/registries-test/app/manifests/1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } });
  assert.equal(res.status, 200);
});
