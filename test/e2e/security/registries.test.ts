// A build names its registries, and the builder connects to them itself, outside any RUN step's
// firewall: as the attacker writes it, `FROM 127.0.0.1:<redis port>/x`, `COPY --from=<an
// internal service>/img`, `--push` to one, `--cache-from` one. Each is refused before any
// connection, with one line naming the address and the setting, as ADD <url> is; the cluster's
// own registry (trusted by the operator, though it lives on loopback) still serves builds.
// That registry is shared by the cluster's tenants and has no accounts: it is tenantScoped, so
// a tenant's build names only repositories under `<tenant>/` there (and pulls `library/`), and
// no build names the blob store's repository on it.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SolveRequest } from '@buildyard/proto';
import { referenceTools, startRegistry, type RegistryService } from '@buildyard/testkit';
import { solve, type SolveOutcome } from '../grpcClient.js';
import { clusterFixture } from './clusterFixture.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster)';
const tools = referenceTools('buildctl');
let registry: RegistryService | undefined;
const env = clusterFixture(async () => {
  registry = await startRegistry();
  const host = registry.host;
  return { workers: 1, registry, tenants: ['alice', 'bob'], env: {
    BUILDYARD_BLOB_STORE: 'registry', BUILDYARD_BLOB_REPOSITORY: `${host}/buildyard/blobs`,
    BUILDYARD_TENANT_SCOPED_REGISTRIES: host, BUILDYARD_SHARED_READONLY_REPOSITORIES: `${host}/library`,
    // bob's buildctl, through the BuildKit endpoint.
    BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'bob',
  } };
}, 'registries');
after(() => registry?.stop());

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
  const name = `${env.cluster.registry.host}/default/registries-test/app:1`;
  const outcome = await solve(env.cluster, dir, { platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name, push: 'true' } }] });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const res = await fetch(`http://${env.cluster.registry.host}/v2/default/registries-test/app/manifests/1`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } });
  assert.equal(res.status, 200);
});

// --- tenantScoped: the cluster's registry gives alice and bob a namespace each.

const MANIFEST_ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

/** The digest a tag of the cluster's registry names, or undefined. */
async function tagged(repository: string, tag: string): Promise<string | undefined> {
  const res = await fetch(`http://${env.cluster.registry.host}/v2/${repository}/manifests/${tag}`, { method: 'HEAD', headers: { accept: MANIFEST_ACCEPT } });
  return res.status === 200 ? res.headers.get('docker-content-digest') ?? undefined : undefined;
}

/** The tags of a repository of the cluster's registry (none when it does not exist). */
async function tags(repository: string): Promise<string[]> {
  const res = await fetch(`http://${env.cluster.registry.host}/v2/${repository}/tags/list`);
  return res.status === 200 ? ((await res.json()) as { tags: string[] | null }).tags ?? [] : [];
}

function build(tenant: 'alice' | 'bob', name: string, dockerfile: string, request: Partial<SolveRequest> = {}): Promise<SolveOutcome> {
  return solve(env.cluster, env.context(`${tenant}-${name}`, dockerfile), { platforms: ['linux/amd64'], ...request }, { token: env.cluster.tokens[tenant] });
}

const pushTo = (name: string): Partial<SolveRequest> => ({ outputs: [{ type: 'image', attrs: { name, push: 'true' } }] });
const cacheRef = (direction: 'cacheTo' | 'cacheFrom', ref: string): Partial<SolveRequest> => ({ [direction]: [{ type: 'registry', attrs: { ref, mode: 'max' } }] });

/** Steps a worker executed (not answered from the cache). */
const ran = (o: SolveOutcome) => o.events.filter((e) => e.vertex?.workerId && !e.vertex.cached && e.vertex.completedMs).map((e) => e.vertex!.name);

/** bob's build failed in one line saying where his repositories are; nothing of it ran. */
function assertScoped(outcome: SolveOutcome, what: string, expect: RegExp = /tenant "bob" may only use repositories under [^ ]+\/bob\/ on this shared registry \(registry\.tenantScoped\)/): void {
  assert.ok(outcome.error, `${what}: bob's build passed`);
  assert.match(outcome.error.message, expect, what);
  assert.ok(!outcome.error.message.includes('\n') && outcome.error.message.length < 600, `${what}: one line: ${outcome.error.message}`);
  assert.deepEqual(ran(outcome), [], `${what}: nothing ran`);
}

test('the attacker: bob cannot build on alice\'s image (FROM, COPY --from, RUN --mount from=, a docker-image:// context); alice can, and both pull library/', { skip, timeout: 180_000 }, async () => {
  const H = env.cluster.registry.host;
  const app = `${H}/alice/app:1`;
  const pushed = await build('alice', 'push-app', `FROM ${env.cluster.busybox.reference}\nRUN echo alice-secret > /secret\n`, pushTo(app));
  assert.equal(pushed.error, undefined, `alice pushes under alice/ from library/: ${pushed.error?.message}`);
  const digest = await tagged('alice/app', '1');
  assert.ok(digest, 'alice/app:1 is in the registry');
  const own = await build('alice', 'from-own', `FROM ${app}\nRUN cat /secret\n`);
  assert.equal(own.error, undefined, `alice builds FROM her own image: ${own.error?.message}`);
  assert.match(own.logs, /alice-secret/);
  const uses: Array<[string, string, Partial<SolveRequest>, number]> = [
    ['from', `FROM ${app}\nRUN cat /secret\n`, {}, 1],
    ['from-digest', `FROM ${H}/alice/app@${digest}\nRUN cat /secret\n`, {}, 1],
    ['copy-from', `FROM ${env.cluster.busybox.reference}\nCOPY --from=${app} /secret /stolen\n`, {}, 2],
    ['mount-from', `FROM ${env.cluster.busybox.reference}\nRUN --mount=type=bind,from=${app},target=/m cat /m/secret\n`, {}, 2],
    ['named-context', 'FROM base\nRUN cat /secret\n', { namedContexts: { base: `docker-image://${app}` } }, 1],
  ];
  for (const [name, dockerfile, request, line] of uses) {
    const outcome = await build('bob', name, dockerfile, request);
    assertScoped(outcome, name);
    assert.match(outcome.error!.message, new RegExp(`^Dockerfile:${line}: ${H.replace(/\./g, '\\.')}/alice/app: tenant "bob"`), `${name}: names the line and the repository`);
    assert.doesNotMatch(outcome.logs, /alice-secret/);
  }
});

test('the attacker: bob cannot push over alice\'s image, nor write or read her registry cache (poisoning it); alice and bob can in their own namespaces', { skip, timeout: 240_000 }, async () => {
  const H = env.cluster.registry.host;
  const dockerfile = `FROM ${env.cluster.busybox.reference}\nRUN echo cached-step > /out\n`;
  const alice = await build('alice', 'cache', dockerfile, { ...pushTo(`${H}/alice/app:2`), ...cacheRef('cacheTo', `${H}/alice/cache:1`) });
  assert.equal(alice.error, undefined, `alice pushes and exports her cache: ${alice.error?.message}`);
  const [image, cache] = [await tagged('alice/app', '2'), await tagged('alice/cache', '1')];
  assert.ok(image && cache, 'alice\'s image and cache are in the registry');
  const poisoned = `FROM ${env.cluster.busybox.reference}\nRUN echo poisoned > /out\n`;
  const attacks: Array<[string, Partial<SolveRequest>, RegExp]> = [
    ['push', pushTo(`${H}/alice/app:2`), /^--output name=\S+\/alice\/app:2 \(-t\): tenant "bob" may only use .*; push to \S+\/bob\/…$/],
    ['push-second-name', { outputs: [{ type: 'image', attrs: { name: `${H}/bob/app:1,${H}/alice/app:2`, push: 'true' } }] }, /^--output name=\S+\/alice\/app:2 \(-t\)/],
    ['cache-to', cacheRef('cacheTo', `${H}/alice/cache:1`), /^--cache-to ref=\S+\/alice\/cache:1: tenant "bob" may only use .*; push to \S+\/bob\/…$/],
    ['cache-from', cacheRef('cacheFrom', `${H}/alice/cache:1`), /^--cache-from ref=\S+\/alice\/cache:1: tenant "bob" may only use .*; pull from \S+\/bob\/…$/],
    ['push-library', pushTo(`${H}/library/busybox:latest`), /^--output name=\S+\/library\/busybox:latest \(-t\): every tenant may pull from \S+\/library\/ but no build may push there \(registry\.sharedReadOnly\)/],
  ];
  for (const [name, request, expect] of attacks) {
    const outcome = await build('bob', `attack-${name}`, poisoned, request);
    assertScoped(outcome, name, expect);
  }
  assert.deepEqual([await tagged('alice/app', '2'), await tagged('alice/cache', '1')], [image, cache], 'alice\'s image and cache are as she left them');
  assert.equal(await tagged('bob/app', '1'), undefined, 'a refused build pushes none of its names');
  assert.equal(await tagged('library/busybox', 'latest'), env.cluster.busybox.indexDigest);
  // In his own namespace bob pushes, exports and imports his cache; alice imports hers (her step comes from it).
  const bob = await build('bob', 'own', poisoned, { ...pushTo(`${H}/bob/app:1`), ...cacheRef('cacheTo', `${H}/bob/cache:1`), ...cacheRef('cacheFrom', `${H}/bob/cache:1`) });
  assert.equal(bob.error, undefined, `bob in his own namespace: ${bob.error?.message}`);
  assert.ok(await tagged('bob/app', '1') && await tagged('bob/cache', '1'));
  const again = await build('alice', 'cache-from', dockerfile, cacheRef('cacheFrom', `${H}/alice/cache:1`));
  assert.equal(again.error, undefined, again.error?.message);
  assert.ok(!again.events.some((e) => e.warning?.message.includes('cache import')), 'alice\'s cache import was not skipped');
});

test('the attacker: no tenant reads or writes the blob store\'s repository on the cluster\'s registry', { skip, timeout: 180_000 }, async () => {
  const H = env.cluster.registry.host;
  const before = await tags('buildyard/blobs');
  const layer = env.cluster.busybox.manifests['linux/amd64'] ?? env.cluster.busybox.indexDigest;
  const dockerfile = `FROM ${env.cluster.busybox.reference}\nRUN echo poisoned > /out\n`;
  for (const tenant of ['alice', 'bob'] as const) {
    const attacks: Array<[string, string, Partial<SolveRequest>]> = [
      ['from', `FROM ${H}/buildyard/blobs:latest\n`, {}],
      ['from-digest', `FROM ${H}/buildyard/blobs@${layer}\n`, {}],
      ['copy-from', `FROM ${env.cluster.busybox.reference}\nCOPY --from=${H}/buildyard/blobs:latest / /x\n`, {}],
      ['push', dockerfile, pushTo(`${H}/buildyard/blobs:poison`)],
      ['cache-to', dockerfile, cacheRef('cacheTo', `${H}/buildyard/blobs:poison`)],
      ['cache-from', dockerfile, cacheRef('cacheFrom', `${H}/buildyard/blobs:poison`)],
    ];
    for (const [name, text, request] of attacks) {
      const outcome = await solve(env.cluster, env.context(`blobs-${tenant}-${name}`, text), { platforms: ['linux/amd64'], ...request }, { token: env.cluster.tokens[tenant] });
      assert.ok(outcome.error, `${tenant} ${name}: the build passed`);
      assert.match(outcome.error.message, /buildyard\/blobs\S*( \(-t\))?: this is the builder's shared blob store \(blobStore\.repository\).*no build may pull from or push to it/, `${tenant} ${name}`);
      assert.deepEqual(ran(outcome), [], `${tenant} ${name}: nothing ran`);
    }
  }
  assert.deepEqual(await tags('buildyard/blobs'), before, 'no tag was written into the blob store\'s repository');
});

test('the attacker: bob\'s buildctl, through the BuildKit endpoint, is scoped alike', { skip: skip || tools.missing || false, timeout: 180_000 }, async () => {
  const H = env.cluster.registry.host;
  const plain = env.context('bk-bob', `FROM ${env.cluster.busybox.reference}\nRUN echo bk > /out\n`);
  const named = env.context('bk-bob-named', 'FROM base\nRUN echo bk > /out\n');
  const buildctl = (...args: string[]) => new Promise<{ code: number; stderr: string }>((resolve) => {
    const dir = args.some((a) => a.startsWith('context:base=')) ? named : plain;
    execFile(tools.paths.buildctl, ['--addr', env.cluster.buildkit!, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`, '--opt', 'platform=linux/amd64', ...args],
      { maxBuffer: 16 * 1024 * 1024 }, (err, _stdout, stderr) => resolve({ code: err ? 1 : 0, stderr }));
  });
  for (const [what, args] of [
    ['push', ['--output', `type=image,name=${H}/alice/app:bk,push=true`]],
    ['export-cache', ['--export-cache', `type=registry,ref=${H}/alice/cache:bk`]],
    ['import-cache', ['--import-cache', `type=registry,ref=${H}/alice/cache:1`]],
    ['named-context', ['--opt', `context:base=docker-image://${H}/alice/app:1`]],
  ] as const) {
    const run = await buildctl(...args);
    assert.notEqual(run.code, 0, `${what}: bob's buildctl build passed`);
    assert.match(run.stderr, /tenant "bob" may only use repositories under \S+\/bob\/ on this shared registry \(registry\.tenantScoped\)/, `${what}: ${run.stderr.slice(-600)}`);
  }
  assert.equal(await tagged('alice/app', 'bk'), undefined);
  assert.equal(await tagged('alice/cache', 'bk'), undefined);
  const own = await buildctl('--output', `type=image,name=${H}/bob/app:bk,push=true`, '--export-cache', `type=registry,ref=${H}/bob/cache:bk`);
  assert.equal(own.code, 0, own.stderr.slice(-600));
  assert.ok(await tagged('bob/app', 'bk') && await tagged('bob/cache', 'bk'));
});
