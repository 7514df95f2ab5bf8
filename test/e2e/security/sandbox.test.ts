// Issue 14, network and sandbox limits, as an attacker would write the Dockerfiles:
// RUN --network=host and --security=insecure need the server's per-tenant entitlements
// (network.host, security.insecure) AND the client's --allow, as BuildKit needs both
// buildkitd's grant and the client's request (BuildKit's wording when refused); --add-host
// reaches every RUN's /etc/hosts and its cache key; and a sandboxed RUN runs
// under Docker's default seccomp profile (no new user namespaces, no mounts) and within its
// worker's (or its tenant's) pids, memory and disk limits, failing with a line naming the limit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { solve } from '../grpcClient.js';
import { ContextDirs } from './contextDirs.js';

let cluster: Cluster;
let contexts: ContextDirs;
const nonce = `${process.pid}${Date.now()}`;

before(async () => {
  // alice is granted both entitlements; bob (and default) none, as on a fresh server.
  cluster = await startCluster({ workers: 1, tenants: ['alice', 'bob'], env: {
    BUILDYARD_ENTITLEMENTS: 'alice:network.host,alice:security.insecure',
    BUILDYARD_WORKER_SANDBOX_PIDS: '128', BUILDYARD_WORKER_SANDBOX_DISK: String(32 * 1024 * 1024),
    BUILDYARD_WORKER_SANDBOX_TENANT_LIMITS: `bob:memoryBytes=${64 * 1024 * 1024}`,
  } });
  contexts = new ContextDirs('sandbox');
});
after(async () => {
  await cluster?.stop();
  contexts?.remove();
});

const context = (name: string, dockerfile: string) => contexts.make(name, dockerfile);

const interfacesOf = (text: string) => [...text.matchAll(/^\s*([a-z0-9]+):\s+\d/gm)].map((m) => m[1] as string).sort();

test('RUN --network=host without the network.host entitlement fails with BuildKit\'s words and runs nothing', async () => {
  const dir = context('host', `FROM ${cluster.busybox.reference}\nRUN echo harmless\nRUN --network=host echo RAN-${nonce}; cat /proc/net/dev\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] }, { token: cluster.tokens.bob });
  assert.match(outcome.error?.message ?? '', /^network\.host is not allowed: RUN --network=host at line 3 needs it; build with --allow network\.host, which the server must also grant your tenant/);
  assert.ok((outcome.error?.message ?? '').length < 300 && !outcome.error?.message.includes('\n'));
  assert.doesNotMatch(outcome.logs, new RegExp(`RAN-${nonce}`));
  const whole = await solve(cluster, context('host-build', `FROM ${cluster.busybox.reference}\nRUN echo RAN-${nonce}\n`), { platforms: ['linux/amd64'], network: 'host' }, { token: cluster.tokens.bob });
  assert.match(whole.error?.message ?? '', /^network\.host is not allowed: --network host needs it/);
  assert.doesNotMatch(whole.logs, new RegExp(`RAN-${nonce}`));
  // Asking for it does not help bob: the server does not grant it, and says so before anything runs.
  const asked = await solve(cluster, dir, { platforms: ['linux/amd64'], entitlements: ['network.host'] }, { token: cluster.tokens.bob });
  assert.match(asked.error?.message ?? '', /^granting entitlement network\.host is not allowed by build daemon configuration: the server grants network\.host per tenant/);
  assert.doesNotMatch(asked.logs, /harmless|RAN-/);
});

test('a granted tenant whose client did not ask (--allow) is refused in BuildKit\'s words', async () => {
  const dir = context('unasked', `FROM ${cluster.busybox.reference}\nRUN --network=host echo RAN-${nonce}\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] }, { token: cluster.tokens.alice });
  assert.match(outcome.error?.message ?? '', /^network\.host is not allowed: RUN --network=host at line 2 needs it; build with --allow network\.host$/);
  assert.doesNotMatch(outcome.logs, new RegExp(`RAN-${nonce}`));
  const insecure = await solve(cluster, context('unasked-insecure', `FROM ${cluster.busybox.reference}\nRUN --security=insecure echo RAN-${nonce}\n`), { platforms: ['linux/amd64'], entitlements: ['network.host'] }, { token: cluster.tokens.alice });
  assert.match(insecure.error?.message ?? '', /^security\.insecure is not allowed: RUN --security=insecure at line 2 needs it; build with --allow security\.insecure$/);
});

test('RUN --security=insecure without the security.insecure entitlement fails the same way', async () => {
  const dir = context('insecure', `FROM ${cluster.busybox.reference}\nRUN --security=insecure mount -t tmpfs t /mnt && echo RAN-${nonce}\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.match(outcome.error?.message ?? '', /^security\.insecure is not allowed: RUN --security=insecure at line 2 needs it/);
  assert.doesNotMatch(outcome.logs, new RegExp(`RAN-${nonce}`));
});

test('a granted tenant gets the host network and a privileged, unconfined step', async () => {
  const dir = context('granted', `FROM ${cluster.busybox.reference}\nRUN --network=host cat /proc/net/dev\nRUN --security=insecure unshare -U true && mkdir -p /mnt/t && mount -t tmpfs t /mnt/t && echo PRIVILEGED-${nonce}\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'], noCache: true, entitlements: ['network.host', 'security.insecure'] }, { token: cluster.tokens.alice });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  // Veths of other tests' steps and namespaces come and go meanwhile; the host's own stay.
  const stable = (names: string[]) => names.filter((n) => !/^by[vop]\d+$/.test(n));
  assert.deepEqual(stable(interfacesOf(outcome.logs)), stable(interfacesOf(readFileSync('/proc/net/dev', 'utf8'))), 'the step saw the host\'s interfaces');
  assert.match(outcome.logs, new RegExp(`PRIVILEGED-${nonce}`));
});

test('--add-host entries reach every RUN\'s /etc/hosts and its cache key; a bad one fails the build', async () => {
  const dir = context('add-host', `FROM ${cluster.busybox.reference}\nRUN grep cache.internal /etc/hosts && echo HOSTS-${nonce}\n`);
  const first = await solve(cluster, dir, { platforms: ['linux/amd64'], addHosts: ['cache.internal:10.1.2.3', 'db.internal=fe80::1'] });
  assert.equal(first.error, undefined, first.error?.message);
  assert.match(first.logs, /10\.1\.2\.3\s+cache\.internal/);
  assert.match(first.logs, new RegExp(`HOSTS-${nonce}`));
  // Another address is another step (not a cache hit of the first), as in BuildKit's exec meta.
  const second = await solve(cluster, dir, { platforms: ['linux/amd64'], addHosts: ['cache.internal:10.9.9.9'] });
  assert.equal(second.error, undefined, second.error?.message);
  assert.match(second.logs, /10\.9\.9\.9\s+cache\.internal/);
  const bad = await solve(cluster, dir, { platforms: ['linux/amd64'], addHosts: ['cache.internal:not-an-ip'] });
  assert.match(bad.error?.message ?? '', /^invalid --add-host "cache\.internal:not-an-ip": use name:ip/);
});

test('a sandboxed RUN cannot create a user namespace or mount: the step fails with the refusal', async () => {
  for (const [name, attack] of [['userns', 'unshare -U -r id'], ['mount', 'mkdir -p /mnt/t && mount -t tmpfs t /mnt/t'], ['mountns', 'unshare -m true']] as const) {
    const dir = context(`attack-${name}`, `FROM ${cluster.busybox.reference}\nRUN ${attack} && echo ESCAPED-${nonce}\n`);
    const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'], noCache: true }, { token: cluster.tokens.bob });
    assert.match(outcome.error?.message ?? '', /did not complete successfully: exit code: \d+/, `${name}: ${outcome.error?.message}`);
    // EPERM, in the words of busybox unshare ("Operation not permitted") or mount ("permission denied").
    assert.match(outcome.logs, /Operation not permitted|permission denied/, `${name}: ${outcome.logs}`);
    assert.doesNotMatch(outcome.logs, new RegExp(`ESCAPED-${nonce}`));
  }
});

test('a fork bomb, a disk filler and a memory hog each fail their step with the limit named', async () => {
  const bomb = await solve(cluster, context('bomb', `FROM ${cluster.busybox.reference}\nRUN for i in $(seq 1 1000); do sleep 60 & done; wait; echo SURVIVED-${nonce}\n`), { platforms: ['linux/amd64'], noCache: true });
  assert.match(bomb.error?.message ?? '', /hit its limit of 128 processes \(worker\.sandbox\.pids\)/, bomb.error?.message);
  const filler = await solve(cluster, context('filler', `FROM ${cluster.busybox.reference}\nRUN dd if=/dev/zero of=/filler bs=1M count=64 && echo FILLED-${nonce}\n`), { platforms: ['linux/amd64'], noCache: true });
  assert.match(filler.error?.message ?? '', /exceeded its disk limit: it wrote \d+(\.\d)? MiB to the root filesystem, over 32 MiB \(worker\.sandbox\.diskBytes\)/, filler.error?.message);
  // bob's own limit: 64 MiB of memory.
  const hog = await solve(cluster, context('hog', `FROM ${cluster.busybox.reference}\nRUN head -c 300000000 /dev/zero | tail > /dev/null && echo FED-${nonce}\n`), { platforms: ['linux/amd64'], noCache: true }, { token: cluster.tokens.bob });
  assert.match(hog.error?.message ?? '', /ran out of memory: killed at its 64 MiB limit \(worker\.sandbox\.memoryBytes\)/, hog.error?.message);
  for (const o of [bomb, filler, hog]) assert.ok(!(o.error?.message ?? '').includes('\n'));
  // The same steps within the limits pass: alice has no memory limit of her own.
  const fine = await solve(cluster, context('fine', `FROM ${cluster.busybox.reference}\nRUN head -c 100000000 /dev/zero | tail > /dev/null; dd if=/dev/zero of=/small bs=1M count=4 2>/dev/null && echo FINE-${nonce}\n`), { platforms: ['linux/amd64'], noCache: true }, { token: cluster.tokens.alice });
  assert.equal(fine.error, undefined, fine.error?.message);
  assert.match(fine.logs, new RegExp(`FINE-${nonce}`));
});
