import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RepositoryPolicy, RepositoryRefusedError } from './repositoryPolicy.js';
import { RegistryClient } from './RegistryClient.js';

const H = 'registry.example:5000';
const policy = new RepositoryPolicy({ tenantScoped: [H], sharedReadOnly: [`${H}/library`], blobRepository: `${H}/buildyard/blobs` });
const refused = (tenant: string, ref: string, access: 'pull' | 'push', what?: string): string => {
  try {
    policy.check(tenant, ref, access, what);
  } catch (err) {
    assert.ok(err instanceof RepositoryRefusedError);
    assert.equal(err.code, 'REPOSITORY_REFUSED');
    return err.message;
  }
  assert.fail(`${tenant} ${access} ${ref} was allowed`);
};

test('on a tenantScoped registry a tenant uses only <tenant>/…, pulls the shared read-only prefixes, and anything elsewhere', () => {
  for (const access of ['pull', 'push'] as const) {
    policy.check('bob', `${H}/bob/app:1`, access);
    policy.check('bob', `${H}/bob/team/cache@sha256:${'a'.repeat(64)}`, access);
    policy.check('bob', 'docker.io/alice/app', access);
    policy.check('bob', 'other.example:5000/alice/app', access);
    policy.check('bob', 'registry.example:5001/alice/app', access);
  }
  policy.check('bob', `${H}/library/busybox:latest`, 'pull');
  policy.check('bob', `${H}/library`, 'pull');
});

test('the attacker: another tenant\'s repository, a look-alike prefix or the bare namespace is refused in one line saying what to use', () => {
  assert.equal(refused('bob', `${H}/alice/app:latest`, 'push'),
    `${H}/alice/app: tenant "bob" may only use repositories under ${H}/bob/ on this shared registry (registry.tenantScoped) and pull from ${H}/library/ (registry.sharedReadOnly); push to ${H}/bob/…`);
  assert.match(refused('bob', `${H}/alice/app@sha256:${'b'.repeat(64)}`, 'pull'), /; pull from registry\.example:5000\/bob\/…$/);
  for (const repo of ['bobby/app', 'bob', 'bob-x/app', 'app']) assert.match(refused('bob', `${H}/${repo}`, 'pull'), /may only use repositories under/, repo);
  // The flag that named it replaces the repository at the start.
  assert.match(refused('bob', `${H}/alice/cache:1`, 'push', `--cache-to ref=${H}/alice/cache:1`), /^--cache-to ref=registry\.example:5000\/alice\/cache:1: tenant "bob" may only/);
  for (const message of [refused('bob', `${H}/alice/app`, 'push')]) assert.ok(!message.includes('\n'));
});

test('the same registry by another spelling of its host is scoped alike; a port-less entry covers 80 and 443', () => {
  assert.match(refused('bob', `REGISTRY.example:5000/alice/app`.replace('REGISTRY', 'registry'), 'pull'), /may only use/);
  const hub = new RepositoryPolicy({ tenantScoped: ['registry.example', 'docker.io'] });
  for (const ref of ['registry.example/alice/app', 'registry.example:443/alice/app', 'registry.example:80/alice/app', 'index.docker.io/alice/app', 'alice/app']) {
    assert.throws(() => hub.check('bob', ref, 'pull'), RepositoryRefusedError, ref);
  }
  hub.check('bob', 'registry.example:8443/alice/app', 'pull');
  hub.check('bob', 'bob/app', 'push');
});

test('the shared read-only prefixes take no push', () => {
  assert.equal(refused('bob', `${H}/library/busybox:latest`, 'push'),
    `${H}/library/busybox: every tenant may pull from ${H}/library/ but no build may push there (registry.sharedReadOnly); push to ${H}/bob/…`);
  assert.match(refused('bob', `${H}/library`, 'push'), /no build may push there/);
});

test('a tenant whose name is no repository path component has no repositories there, but may pull the shared prefixes', () => {
  for (const tenant of ['Bob', 'team a', '-x', 'a/b', '']) {
    assert.match(refused(tenant, `${H}/${tenant.toLowerCase().replace(/[^a-z]/g, '') || 'x'}/app`, 'push'), /has no repositories on this shared registry .*ask the operator to rename the tenant$/, tenant);
  }
  policy.check('Bob', `${H}/library/busybox`, 'pull');
  assert.match(refused('x'.repeat(500), `${H}/alice/app`, 'pull'), /tenant "x{64}…" may only/);
});

test('the attacker: the blob store repository is refused to every tenant, pull and push, on any host name', () => {
  for (const tenant of ['alice', 'bob', 'buildyard']) {
    for (const access of ['pull', 'push'] as const) {
      for (const ref of [`${H}/buildyard/blobs:latest`, `${H}/buildyard/blobs@sha256:${'c'.repeat(64)}`, '10.0.0.7:5000/buildyard/blobs', 'localhost:5000/buildyard/blobs']) {
        assert.match(refused(tenant, ref, access), /this is the builder's shared blob store \(blobStore\.repository\).*use a repository of your own$/, `${tenant} ${access} ${ref}`);
      }
    }
  }
  const unscoped = new RepositoryPolicy({ blobRepository: 'registry.example.com/buildyard/blobs' });
  assert.throws(() => unscoped.check('alice', 'registry.example.com/buildyard/blobs:x', 'pull'), /shared blob store/);
  unscoped.check('alice', 'registry.example.com/buildyard/blobs2', 'push');
  unscoped.check('alice', 'registry.example.com/alice/app', 'push');
});

test('no options refuse nothing; entries that cannot be read fail in one line naming the option', () => {
  const none = new RepositoryPolicy();
  assert.equal(none.refusesAny, false);
  assert.equal(none.guard('bob'), undefined);
  none.check('bob', `${H}/alice/app`, 'push');
  assert.throws(() => new RepositoryPolicy({ tenantScoped: [`${H}/alice`] }), /^Error: registry\.tenantScoped: .* is not a registry/);
  assert.throws(() => new RepositoryPolicy({ tenantScoped: [H], sharedReadOnly: [H] }), /^Error: registry\.sharedReadOnly: .* is not host\[:port\]\/prefix/);
  assert.throws(() => new RepositoryPolicy({ tenantScoped: [H], sharedReadOnly: ['other.example/library'] }), /is not on a registry of registry\.tenantScoped/);
  // An invalid reference is left to the code that uses it, which reports it.
  policy.check('bob', 'UPPER/Case::x', 'pull');
});

test('the attacker: a build\'s registry client asks the guard before every operation, a mount\'s source too, and sends nothing refused', async () => {
  const requests: string[] = [];
  const server = createServer((req, res) => { requests.push(`${req.method} ${req.url}`); res.writeHead(404).end(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    const client = new RegistryClient({ attempts: 1, repositories: new RepositoryPolicy({ tenantScoped: [host], blobRepository: `${host}/buildyard/blobs` }).guard('bob') });
    const digest = `sha256:${'d'.repeat(64)}` as const;
    const attempts: Array<[string, () => Promise<unknown>]> = [
      ['resolve', () => client.resolve(`${host}/alice/app:1`, 'linux/amd64')],
      ['headManifest', () => client.headManifest(`${host}/alice/app:1`)],
      ['putManifest', () => client.putManifest(`${host}/alice/app:1`, Buffer.from('{}'), 'application/vnd.oci.image.manifest.v1+json')],
      ['blobExists', () => client.blobExists(`${host}/buildyard/blobs`, digest)],
      ['fetchBlobBytes', () => client.fetchBlobBytes(`${host}/alice/app`, digest)],
      ['pushBlob', () => client.pushBlob(`${host}/buildyard/blobs`, { digest, size: 1 }, Buffer.from('x'))],
      ['listTags', () => client.listTags(`${host}/alice/app`)],
    ];
    for (const [name, attempt] of attempts) await assert.rejects(attempt(), RepositoryRefusedError, name);
    assert.deepEqual(requests, [], 'nothing refused reached the registry');
    // Its own repository is asked for; a cross-repository mount from another tenant's is refused after the HEAD.
    await assert.rejects(client.pushBlob(`${host}/bob/app`, { digest, size: 1 }, Buffer.from('x'), { mountFrom: 'alice/app' }),
      (err: Error) => err instanceof RepositoryRefusedError && err.message.startsWith(`${host}/alice/app: tenant "bob"`));
    assert.deepEqual(requests, [`HEAD /v2/bob/app/blobs/${digest}`]);
  } finally {
    server.close();
  }
});
