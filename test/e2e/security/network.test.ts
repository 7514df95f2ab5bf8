// Issue 23 and issue 14 (network): RUN steps reach the outside world by default and nothing of
// the cluster. The "outside" is a network namespace of the test's own (outsideNetwork.ts): a web
// server and a DNS server there, reached through the worker's egress by a host route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { until } from '@buildyard/testkit';
import { solve } from '../grpcClient.js';
import { useOutsideCluster } from './outsideCluster.js';

const canRun = process.getuid?.() === 0 && spawnSync('nft', ['--version']).status === 0;
const skip = canRun ? false : 'needs root and nftables';
const example = resolve(import.meta.dirname, '../../../examples/egress');

const env = useOutsideCluster('network', !!canRun, { cluster: (outside) => ({
  workers: 1, tenants: ['alice', 'bob'],
  env: {
    BUILDYARD_WORKER_DNS_NAMESERVERS: outside.dns,
    BUILDYARD_WORKER_EGRESS_DENY: outside.denied,
    BUILDYARD_WORKER_EGRESS_TENANT_DENY: `bob=${outside.web}`,
    BUILDYARD_WORKER_EGRESS_ALLOW: outside.private.allowed,
  },
}) });

const context = (name: string, dockerfile: string) => env.contexts.make(name, dockerfile);

/** A shell line printing REACHED-<tag> or BLOCKED-<tag>. (busybox 1.35's wget -T crashes.) */
const probe = (url: string, tag: string) => `(timeout 10 wget -q -O - ${url} && echo REACHED-${tag}) || echo BLOCKED-${tag}`;

/**
 * What is left of the worker's step networks (see EgressNetworks) besides the idle ones it keeps
 * with their tables: one per tenant for its next step, and a spare made ahead, nothing running
 * in any (at most 4 + 1). Left: a namespace something runs in, a table of no idle namespace.
 */
function leftovers(): string[] {
  const owner = 'by' + createHash('sha256').update(resolve(env.cluster.workers[0]!.stateDir, 'runc')).digest('hex').slice(0, 8);
  let names: string[] = [];
  try { names = readdirSync('/run/netns'); } catch { /* none */ }
  const tables = [...(spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout ?? '').matchAll(/^table inet (\S+)$/gm)].map((m) => m[1] as string);
  const namespaces = names.filter((n) => n.startsWith(`${owner}-`));
  const idle = namespaces.filter((n) => spawnSync('ip', ['netns', 'pids', n], { encoding: 'utf8' }).stdout === '');
  const idleSlots = new Set(idle.length <= 5 ? idle.map((n) => n.slice(owner.length + 1)) : []);
  return [
    ...namespaces.filter((n) => !idleSlots.has(n.slice(owner.length + 1))),
    ...tables.filter((t) => t.startsWith(`${owner}_`) && !idleSlots.has(t.slice(owner.length + 1))),
  ];
}

test('examples/egress: a RUN downloads from the outside by name, through the worker\'s DNS', { skip }, async () => {
  const url = `http://files.${env.outside.domain}/hello.txt`;
  const outcome = await solve(env.cluster, example, { platforms: ['linux/amd64'], buildArgs: { BASE: env.cluster.busybox.reference, URL: url }, noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, new RegExp(`hello from outside ${env.outside.nonce}`));
  assert.match(outcome.logs, new RegExp(`downloaded \\d+ bytes from ${url.replace(/\./g, '\\.')}`));
  // The worker tears a step's network down after the step returns, so the build may end first.
  await until('the step\'s namespace, veth and table to be gone', () => leftovers().length === 0);
  assert.deepEqual(leftovers(), []);
});

test('the same RUN cannot reach Redis, the registry, the worker host, a denied service or a metadata address', { skip }, async () => {
  const redisPort = new URL(env.cluster.redis.url).port;
  const registryPort = env.cluster.registry.host.split(':')[1];
  const lines = [
    `cat /proc/net/dev`,
    `gw=$(ip route | awk '/default/ {print $3}')`,
    probe(`http://127.0.0.1:${redisPort}/`, 'redis-loopback'),
    probe(`http://$gw:${redisPort}/`, 'redis-gateway'),
    probe(`http://127.0.0.1:${registryPort}/v2/`, 'registry-loopback'),
    probe(`http://$gw:${registryPort}/v2/`, 'registry-gateway'),
    probe(`http://${env.outside.host.address}:${env.outside.host.port}/`, 'worker-host'),
    probe(`http://$gw:${env.outside.host.port}/`, 'worker-gateway'),
    probe(`http://${env.outside.denied}/`, 'denied'),
    probe(`http://${env.outside.metadata}/latest/meta-data/`, 'metadata'),
    probe(`http://${env.outside.web}/`, 'outside'),
  ];
  const dir = context('cluster', `FROM ${env.cluster.busybox.reference}\nRUN ${lines.join('; ')}\n`);
  const outcome = await solve(env.cluster, dir, { platforms: ['linux/amd64'], noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  for (const tag of ['redis-loopback', 'redis-gateway', 'registry-loopback', 'registry-gateway', 'worker-host', 'worker-gateway', 'denied', 'metadata']) {
    assert.match(outcome.logs, new RegExp(`BLOCKED-${tag}\\b`), `${tag}: ${outcome.logs}`);
  }
  assert.doesNotMatch(outcome.logs, /WORKER-HOST|DENIED-SERVICE|METADATA-SERVICE/);
  // What stopped the others was the firewall, not a missing route: the outside answers.
  assert.match(outcome.logs, /REACHED-outside/);
  const interfaces = [...outcome.logs.matchAll(/^\s*([a-z0-9]+):\s+\d/gm)].map((m) => m[1]).sort();
  assert.deepEqual(interfaces, ['eth0', 'lo']);
});

test('private addresses (a frontend, a pod, the LAN) are unreachable by default, with no list naming them; worker.egress.allow opens one', { skip }, async () => {
  const dir = context('private', `FROM ${env.cluster.busybox.reference}\nRUN ${probe(`http://${env.outside.private.denied}/`, 'private')}; ${probe(`http://${env.outside.private.allowed}/`, 'private-allowed')}\n`);
  const outcome = await solve(env.cluster, dir, { platforms: ['linux/amd64'], noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, /BLOCKED-private\b/);
  // Both addresses are routed the same way: the allowed one answering shows the firewall refused the other.
  assert.match(outcome.logs, /REACHED-private-allowed/);
});

test('--network=none, on the RUN or for the whole build, has only lo and cannot reach the outside', { skip }, async () => {
  const dir = context('none', `FROM ${env.cluster.busybox.reference}\nRUN --network=none cat /proc/net/dev; ${probe(`http://${env.outside.web}/`, 'run-none')}\n`);
  const run = await solve(env.cluster, dir, { platforms: ['linux/amd64'], noCache: true });
  assert.equal(run.error, undefined, run.error?.message);
  assert.match(run.logs, /BLOCKED-run-none/);
  assert.deepEqual([...run.logs.matchAll(/^\s*([a-z0-9]+):\s+\d/gm)].map((m) => m[1]), ['lo']);
  const build = context('build-none', `FROM ${env.cluster.busybox.reference}\nRUN ${probe(`http://${env.outside.web}/`, 'build-none')}\n`);
  const whole = await solve(env.cluster, build, { platforms: ['linux/amd64'], network: 'none', noCache: true });
  assert.equal(whole.error, undefined, whole.error?.message);
  assert.match(whole.logs, /BLOCKED-build-none/);
});

test('a tenant\'s own deny list applies to its builds only', { skip }, async () => {
  const dir = context('tenant', `FROM ${env.cluster.busybox.reference}\nRUN ${probe(`http://${env.outside.web}/`, 'tenant')}\n`);
  const bob = await solve(env.cluster, dir, { platforms: ['linux/amd64'], noCache: true }, { token: env.cluster.tokens.bob });
  assert.equal(bob.error, undefined, bob.error?.message);
  assert.match(bob.logs, /BLOCKED-tenant/);
  const alice = await solve(env.cluster, dir, { platforms: ['linux/amd64'], noCache: true }, { token: env.cluster.tokens.alice });
  assert.equal(alice.error, undefined, alice.error?.message);
  assert.match(alice.logs, /REACHED-tenant/);
});
