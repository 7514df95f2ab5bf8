import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { seededRegistryFixture, startRegistryProxy, type RegistryProxy } from '@buildyard/testkit';
import { RegistryClient, RegistryError } from './RegistryClient.js';
import { ProvenBlobs } from './ProvenBlobs.js';
import { FsContentStore, DigestMismatchError } from './FsContentStore.js';
import { sha256Digest } from './digest.js';
import { MediaTypes } from './mediaTypes.js';
import { isImageIndex, type ImageIndex, type ImageManifest } from './types.js';
import { execFileP, makeImage } from './imageFixtures.test-util.js';

const fx = seededRegistryFixture('oci-registry-test');
const proxies: RegistryProxy[] = [];
after(async () => {
  for (const p of proxies) await p.stop();
});

async function proxy(opts: Omit<Parameters<typeof startRegistryProxy>[0], 'upstream'>): Promise<RegistryProxy> {
  const p = await startRegistryProxy({ upstream: fx.registry.host, ...opts });
  proxies.push(p);
  return p;
}

const newClient = (extra: ConstructorParameters<typeof RegistryClient>[0] = {}) => new RegistryClient({ dockerConfig: false, backoffMs: 5, ...extra });

async function skopeoRaw(ref: string): Promise<Buffer> {
  const { stdout } = await execFileP('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'buffer' });
  return stdout;
}

describe('pull from a real registry', () => {
  test('resolve busybox for linux/amd64 and linux/arm64', async () => {
    const client = newClient();
    const head = await client.headManifest(fx.busybox.reference);
    assert.equal(head?.digest, fx.busybox.indexDigest);
    for (const [platform, arch] of [['linux/amd64', 'amd64'], ['linux/arm64', 'arm64'], ['linux/arm64/v8', 'arm64']] as const) {
      const r = await client.resolve(fx.busybox.reference, platform);
      assert.equal(r.indexDigest, fx.busybox.indexDigest);
      assert.equal(r.manifestDigest, fx.busybox.manifests[`linux/${arch}`]);
      assert.equal(r.config.architecture, arch);
      assert.equal(r.config.os, 'linux');
      assert.equal(r.manifest.layers.length, r.config.rootfs.diff_ids.length);
      assert.equal(sha256Digest(r.configBytes), r.manifest.config.digest);
    }
    await assert.rejects(client.resolve(fx.busybox.reference, 'linux/s390x'), /no manifest for platform linux\/s390x .*available: linux\/amd64, linux\/arm64/);
    // A platform manifest by digest is that image whatever platform is asked for, as in
    // containerd's images.Manifest (BuildKit): only an index's entries are chosen by platform.
    const armRef = `${fx.registry.host}/library/busybox@${fx.busybox.manifests['linux/arm64']}`;
    assert.equal((await client.resolve(armRef, 'linux/arm64')).config.architecture, 'arm64');
    const other = await client.resolve(armRef, 'linux/amd64');
    assert.equal(other.config.architecture, 'arm64');
    assert.equal(other.manifestDigest, fx.busybox.manifests['linux/arm64']);
  });

  test('pull every blob into a content store with digest verification', async () => {
    const store = new FsContentStore(join(fx.dir, 'pull-store'));
    const client = newClient({ store });
    for (const platform of ['linux/amd64', 'linux/arm64']) {
      const r = await client.resolve(fx.busybox.reference, platform);
      for (const d of [r.manifest.config, ...r.manifest.layers]) {
        const info = await client.pullBlob(r.reference, d);
        assert.equal(info.digest, d.digest);
        assert.equal(info.size, d.size);
        assert.equal(sha256Digest(await store.readBytes(d.digest)), d.digest);
      }
    }
    // Streaming without a store verifies too.
    const r = await client.resolve(fx.busybox.reference, 'linux/amd64');
    const parts: Buffer[] = [];
    for await (const c of newClient().fetchBlob(r.reference, r.manifest.layers[0].digest)) parts.push(c as Buffer);
    assert.equal(sha256Digest(Buffer.concat(parts)), r.manifest.layers[0].digest);
    await assert.rejects(newClient().fetchBlobBytes(r.reference, sha256Digest('nope')), (err: unknown) => err instanceof RegistryError && err.status === 404);
    await assert.rejects(newClient().getManifest(`${fx.registry.host}/library/busybox:nosuchtag`), /HTTP 404 MANIFEST_UNKNOWN/);
  });

  test('corrupted blob bytes are rejected and never stored', async () => {
    const p = await proxy({ mode: 'plain', corruptBlobs: true });
    const store = new FsContentStore(join(fx.dir, 'corrupt-store'));
    const client = newClient({ store });
    const r = await newClient().resolve(fx.busybox.reference, 'linux/amd64');
    const layer = r.manifest.layers[0];
    await assert.rejects(client.pullBlob({ registry: p.host, repository: 'library/busybox' }, layer), DigestMismatchError);
    assert.equal(await store.has(layer.digest), false);
    await assert.rejects(async () => {
      for await (const _ of newClient().fetchBlob({ registry: p.host, repository: 'library/busybox' }, layer.digest)) { /* drain */ }
    }, DigestMismatchError);
  });
});

describe('resolving with a store, as a planner does', () => {
  test('a platform manifest the store holds is read there; one lookup of the reference serves every platform', async () => {
    const p = await proxy({ mode: 'basic', users: { dana: 'pw' } });
    const ref = `${p.host}/library/busybox:latest`;
    const store = new FsContentStore(join(fx.dir, 'resolve-store'));
    const dana = newClient({ store, credentials: { [p.host]: { username: 'dana', password: 'pw' } } });
    const manifestGets = () => p.requests.filter((r) => r.method === 'GET' && r.path.includes('/manifests/') && r.status === 200).map((r) => r.path.split('/manifests/')[1]);
    const first = await dana.resolve(ref, 'linux/amd64');
    assert.deepEqual(manifestGets(), ['latest', fx.busybox.manifests['linux/amd64']]);
    assert.equal(await store.has(first.manifestDigest), true, 'the platform manifest is kept');
    // A later build: the tag is looked up again (it may have moved), the platform manifest is not.
    p.requests.length = 0;
    const tops = new Map();
    const amd = await dana.resolve(ref, 'linux/amd64', {}, tops);
    assert.equal(amd.manifestDigest, fx.busybox.manifests['linux/amd64']);
    assert.deepEqual(amd.manifestBytes, first.manifestBytes);
    assert.equal(amd.descriptor.mediaType, first.descriptor.mediaType);
    const arm = await dana.resolve(ref, 'linux/arm64', {}, tops);
    assert.equal(arm.manifestDigest, fx.busybox.manifests['linux/arm64']);
    assert.equal(arm.config.architecture, 'arm64');
    assert.deepEqual(manifestGets(), ['latest', fx.busybox.manifests['linux/arm64']], 'one tag lookup for both platforms; arm64 fetched once');
  });

  test('a client without access gets nothing from what the store holds: the reference is refused first', async () => {
    const p = await proxy({ mode: 'basic', users: { erin: 'pw' } });
    const ref = `${p.host}/library/busybox:latest`;
    const store = new FsContentStore(join(fx.dir, 'shared-store'));
    await newClient({ store, credentials: { [p.host]: { username: 'erin', password: 'pw' } } }).resolve(ref, 'linux/amd64');
    const stranger = newClient({ store });
    await assert.rejects(stranger.resolve(ref, 'linux/amd64'), (err: unknown) => err instanceof RegistryError && err.status === 401);
    await assert.rejects(stranger.resolve(ref, 'linux/amd64', {}, new Map()), (err: unknown) => err instanceof RegistryError && err.status === 401);
  });

  test('a stored platform manifest whose bytes went bad is fetched again', async () => {
    const store = new FsContentStore(join(fx.dir, 'bad-store'));
    const client = newClient({ store });
    const good = await client.resolve(fx.busybox.reference, 'linux/amd64');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(store.path(good.manifestDigest), '{"tampered": true}');
    const again = await client.resolve(fx.busybox.reference, 'linux/amd64');
    assert.deepEqual(again.manifestBytes, good.manifestBytes);
  });
});

describe('push to a real registry', () => {
  test('push an image monolithic and chunked, mount, index by tag and digest', async () => {
    const amd = await makeImage('amd64', { 'hello.txt': 'hello amd64\n', 'big.bin': randomBytes(300_000) });
    const arm = await makeImage('arm64', { 'hello.txt': 'hello arm64\n' });
    const client = newClient({ chunkSize: 64 * 1024 });
    const repo = { registry: fx.registry.host, repository: 'test/pushed' };

    // Monolithic upload of config + small layer.
    assert.equal((await client.pushBlob(repo, arm.layerDesc, arm.layer)).result, 'uploaded');
    assert.equal((await client.pushBlob(repo, arm.configDesc, arm.config)).result, 'uploaded');
    assert.equal((await client.pushBlob(repo, arm.configDesc, arm.config)).result, 'exists');
    // Chunked upload from a stream factory (several PATCHes of 64 KiB).
    const res = await client.pushBlob(repo, amd.layerDesc, () => (async function* () { yield amd.layer.subarray(0, 1000); yield amd.layer.subarray(1000); })(), { chunked: true });
    assert.equal(res.result, 'uploaded');
    assert.ok(amd.layer.length > 3 * 64 * 1024);
    await client.pushBlob(repo, amd.configDesc, amd.config);
    assert.deepEqual(await newClient().fetchBlobBytes(repo, amd.layerDesc.digest), amd.layer);

    // A wrong descriptor is caught by the registry's digest check.
    const bogus = Buffer.from('x'.repeat(10));
    await assert.rejects(client.pushBlob(repo, { digest: sha256Digest('other'), size: 10 }, bogus), /upload blob .* failed: HTTP 400 DIGEST_INVALID/);

    // Cross-repository mount.
    const other = { registry: fx.registry.host, repository: 'test/other' };
    const mounted = await client.pushBlob(other, amd.layerDesc, undefined, { mountFrom: 'test/pushed' });
    assert.equal(mounted.result, 'mounted');
    assert.equal(await client.blobExists(other, amd.layerDesc.digest), true);

    // Manifests by digest, then an index by tag.
    assert.equal(await client.putManifest({ ...repo, digest: amd.manifestDesc.digest }, amd.manifest, MediaTypes.OciManifest), amd.manifestDesc.digest);
    assert.equal(await client.putManifest({ ...repo, tag: 'arm' }, arm.manifest), arm.manifestDesc.digest);
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [amd.manifestDesc, arm.manifestDesc] };
    const indexBytes = Buffer.from(JSON.stringify(index));
    const indexDigest = await client.putManifest({ ...repo, tag: 'multi' }, indexBytes);
    assert.equal(indexDigest, sha256Digest(indexBytes));

    // skopeo, an independent client, sees exactly what we pushed.
    assert.deepEqual(await skopeoRaw(`${fx.registry.host}/test/pushed:multi`), indexBytes);
    assert.deepEqual(await skopeoRaw(`${fx.registry.host}/test/pushed@${amd.manifestDesc.digest}`), amd.manifest);
    assert.deepEqual(await skopeoRaw(`${fx.registry.host}/test/pushed:arm`), arm.manifest);
    const { stdout } = await execFileP('skopeo', ['inspect', '--tls-verify=false', '--override-arch', 'arm64', `docker://${fx.registry.host}/test/pushed:multi`]);
    assert.equal(JSON.parse(stdout).Architecture, 'arm64');

    const r = await client.resolve(`${fx.registry.host}/test/pushed:multi`, 'linux/arm64');
    assert.equal(r.manifestDigest, arm.manifestDesc.digest);
    assert.deepEqual((await client.listTags(repo)).sort(), ['arm', 'multi']);

    // A manifest whose blobs are missing is refused with a hint.
    const orphan = await makeImage('amd64', { 'orphan': 'x' });
    await assert.rejects(client.putManifest({ ...repo, tag: 'orphan' }, orphan.manifest), /PUT manifest .* failed: HTTP 400 MANIFEST_BLOB_UNKNOWN.*push every referenced blob/);
  });

  test('pushBlob reads from the content store when no source is given', async () => {
    const store = new FsContentStore(join(fx.dir, 'push-store'));
    const img = await makeImage('amd64', { 'from-store': 'yes' });
    await store.put(img.layer);
    const client = newClient({ store });
    const repo = { registry: fx.registry.host, repository: 'test/fromstore' };
    assert.equal((await client.pushBlob(repo, img.layerDesc)).result, 'uploaded');
    assert.equal((await client.pushBlob(repo, img.layerDesc, undefined, { chunked: true })).result, 'exists');
  });
});

describe('auth and retries', () => {
  test('bearer token flow: anonymous pull, push needs credentials', async () => {
    const p = await proxy({ mode: 'bearer', users: { alice: 's3cret' }, refreshTokens: ['refresh-ok'] });
    const ref = `${p.host}/library/busybox:latest`;
    const anon = newClient();
    const r = await anon.resolve(ref, 'linux/arm64');
    assert.equal(r.manifestDigest, fx.busybox.manifests['linux/arm64']);
    assert.ok(p.tokenRequests.length >= 1 && p.tokenRequests.every((t) => t.account === undefined));
    const before = p.tokenRequests.length;
    await anon.resolve(ref, 'linux/arm64');
    assert.equal(p.tokenRequests.length, before, 'tokens are cached per scope');

    const img = await makeImage('amd64', { 'auth.txt': 'token flow' });
    const repo = { registry: p.host, repository: 'test/auth' };
    await assert.rejects(anon.pushBlob(repo, img.layerDesc, img.layer), (err: unknown) => err instanceof RegistryError && err.status === 401 && /check the credentials for 127\.0\.0\.1:\d+/.test(err.message));

    const alice = newClient({ credentials: { [p.host]: { username: 'alice', password: 's3cret' } } });
    assert.equal((await alice.pushBlob(repo, img.layerDesc, img.layer, { chunked: true })).result, 'uploaded');
    await alice.pushBlob(repo, img.configDesc, img.config);
    await alice.putManifest({ ...repo, tag: 'v1' }, img.manifest);
    assert.ok(p.tokenRequests.some((t) => t.account === 'alice' && t.scopes.includes('repository:test/auth:pull,push')));
    // Mount scope includes pull on the source repository.
    assert.equal((await alice.pushBlob({ ...repo, repository: 'test/auth2' }, img.layerDesc, undefined, { mountFrom: 'test/auth' })).result, 'mounted');
    assert.ok(p.tokenRequests.some((t) => t.scopes.includes('repository:test/auth:pull')));

    // Per-call credentials, identity tokens, and bad passwords.
    assert.equal(await anon.blobExists(repo, img.layerDesc.digest, { credentials: { username: 'alice', password: 's3cret' } }), true);
    const refresh = newClient({ credentials: { [p.host]: { identityToken: 'refresh-ok' } } });
    assert.equal(await refresh.putManifest({ ...repo, tag: 'v2' }, img.manifest), img.manifestDesc.digest);
    assert.ok(p.tokenRequests.some((t) => t.via === 'refresh'));
    const wrong = newClient({ credentials: { [p.host]: { username: 'alice', password: 'nope' } } });
    await assert.rejects(wrong.getManifest(ref), /token from 127\.0\.0\.1:\d+\) failed: HTTP 401.*check the credentials/);
    assert.deepEqual(await skopeoRaw(`${fx.registry.host}/test/auth:v1`), img.manifest);
  });

  test('basic auth', async () => {
    const p = await proxy({ mode: 'basic', users: { bob: 'pw' } });
    const ref = `${p.host}/library/busybox:latest`;
    await assert.rejects(newClient().getManifest(ref), (err: unknown) => err instanceof RegistryError && err.status === 401);
    const m = await newClient({ credentials: { [p.host]: { username: 'bob', password: 'pw' } } }).getManifest(ref);
    assert.equal(m.digest, fx.busybox.indexDigest);
    assert.ok(isImageIndex(m.manifest));
  });

  test('docker config.json credentials are used', async () => {
    const p = await proxy({ mode: 'basic', users: { carol: 'pw2' } });
    const cfgDir = join(fx.dir, 'dockercfg');
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(cfgDir, { recursive: true });
    await writeFile(join(cfgDir, 'config.json'), JSON.stringify({ auths: { [`http://${p.host}`]: { auth: Buffer.from('carol:pw2').toString('base64') } } }));
    const m = await new RegistryClient({ dockerConfig: join(cfgDir, 'config.json') }).getManifest(`${p.host}/library/busybox:latest`);
    assert.equal(m.digest, fx.busybox.indexDigest);
  });

  test('5xx responses are retried with backoff, then fail naming registry and operation', async () => {
    const p = await proxy({ mode: 'plain', failNext: { count: 2 } });
    const ref = `${p.host}/library/busybox:latest`;
    const m = await newClient().getManifest(ref);
    assert.equal(m.digest, fx.busybox.indexDigest);
    assert.equal(p.requests.filter((r) => r.status === 503).length, 2);

    p.options.failNext = { count: 100 };
    await assert.rejects(newClient().getManifest(ref), (err: unknown) => {
      assert.ok(err instanceof RegistryError);
      assert.match(err.message, new RegExp(`^registry ${p.host}: GET manifest ${p.host}/library/busybox:latest failed after 4 attempts: HTTP 503 .*injected failure`));
      return true;
    });
    assert.equal(p.options.failNext.count, 100 - 4);

    // Uploads are retried too (PATCH of a chunked upload fails once).
    p.options.failNext = { count: 1, match: (method) => method === 'PATCH' };
    const img = await makeImage('arm64', { 'retry.txt': 'again' });
    const res = await newClient().pushBlob({ registry: p.host, repository: 'test/retry' }, img.layerDesc, img.layer, { chunked: true });
    assert.equal(res.result, 'uploaded');
    assert.equal(p.options.failNext.count, 0);

    // A manifest PUT answered DIGEST_INVALID (distribution reading a blob link another push
    // rewrites in place) is tried again: its digest is the sent bytes' own.
    const client = newClient();
    const repo = { registry: p.host, repository: 'test/retry' };
    await client.pushBlob(repo, img.configDesc, img.config);
    p.options.failNext = { count: 1, status: 400, code: 'DIGEST_INVALID', match: (method, path) => method === 'PUT' && path.includes('/manifests/') };
    assert.equal(await client.putManifest({ ...repo, tag: 'manifest' }, img.manifest), img.manifestDesc.digest);
    assert.equal(p.options.failNext.count, 0);
    assert.equal(p.requests.filter((r) => r.method === 'PUT' && r.path.includes('/manifests/')).map((r) => r.status).join(','), '400,201');
  });

  test('network errors are retried and reported', async () => {
    const client = newClient({ timeoutMs: 2000 });
    // A loopback port nobody listens on.
    const { createServer } = await import('node:net');
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    await assert.rejects(client.getManifest(`127.0.0.1:${port}/x/y:z`), new RegExp(`^RegistryError: registry 127.0.0.1:${port}: GET manifest .* failed after 4 attempts: .*ECONNREFUSED`));
  });

  test('requests time out', async () => {
    const { createServer } = await import('node:http');
    const srv = createServer(() => { /* never answers */ });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    try {
      const port = (srv.address() as { port: number }).port;
      const started = Date.now();
      await assert.rejects(newClient({ timeoutMs: 150, attempts: 2 }).getManifest(`127.0.0.1:${port}/x/y:z`), /failed after 2 attempts: .*timed out after 150 ms/);
      assert.ok(Date.now() - started < 20_000, 'gave up on a server that never answers'); // a hang would never end
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe('a hostile registry (anyone\'s server a FROM names)', () => {
  /** Answers as `routes` say; `endless` streams megabytes until the client goes away. */
  async function hostileRegistry(routes: Record<string, (res: import('node:http').ServerResponse) => void>) {
    const { createServer } = await import('node:http');
    const srv = createServer((req, res) => {
      const route = routes[`${req.method} ${req.url?.split('?')[0]}`];
      if (route) route(res);
      else { res.writeHead(404); res.end(); }
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(srv.address() as { port: number }).port}`;
    return { host, close: async () => { srv.closeAllConnections(); await new Promise<void>((r) => srv.close(() => r())); } };
  }
  const chunk = Buffer.alloc(1024 * 1024, 0x61);
  const endless = (status: number, headers: Record<string, string> = {}) => (res: import('node:http').ServerResponse) => {
    res.writeHead(status, headers);
    const more = () => { while (!res.destroyed && res.write(chunk)); };
    res.on('drain', more);
    more();
  };
  const json = (doc: unknown, headers: Record<string, string> = {}) => (res: import('node:http').ServerResponse) => {
    res.writeHead(200, { 'content-type': MediaTypes.OciManifest, ...headers });
    res.end(JSON.stringify(doc));
  };
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const manifestWith = (size: number) => ({ schemaVersion: 2, mediaType: MediaTypes.OciManifest, config: { mediaType: MediaTypes.OciConfig, digest: sha256Digest(config), size }, layers: [] });

  test('a blob the shared store already holds is used for a registry only once that registry serves its bytes: a HEAD, a range of zeros or other bytes are refused', async () => {
    const store = new FsContentStore(join(fx.dir, 'served-store'));
    const small = await store.put(randomBytes(1000)); // a config's size: checked whole
    const large = await store.put(randomBytes(3 * 1024 * 1024)); // a layer's size: checked by a range
    const reg = await hostileRegistry({
      // Yes to every HEAD; a whole GET of other bytes; a range answered with zeros.
      [`HEAD /v2/x/lies/blobs/${small.digest}`]: (res) => { res.writeHead(200, { 'content-length': '1000' }); res.end(); },
      [`GET /v2/x/lies/blobs/${small.digest}`]: (res) => { res.writeHead(200); res.end(randomBytes(1000)); },
      [`GET /v2/x/lies/blobs/${large.digest}`]: (res) => { res.writeHead(206); res.end(Buffer.alloc(4096)); },
    });
    try {
      const client = newClient({ store, attempts: 1 });
      const lies = { registry: reg.host, repository: 'x/lies' };
      assert.equal(await client.blobExists(lies, small.digest), true, 'the HEAD alone would have said yes');
      assert.equal(await client.servesBlob(lies, small.digest, store), false);
      assert.equal(await client.servesBlob(lies, large.digest, store), false);
      await assert.rejects(client.pullBlob(lies, small.digest), /blob sha256:\w+ is not in x\/lies/);
      await assert.rejects(client.fetchBlobBytes(lies, { digest: large.digest, size: large.size }), /blob sha256:\w+ is not in x\/lies/);
    } finally {
      await reg.close();
    }
    // A real registry holding the same bytes serves them, by a range and whole; one without them does not.
    const real = { registry: fx.registry.host, repository: 'test/served' };
    for (const blob of [small, large]) await newClient().pushBlob(real, blob, await store.readBytes(blob.digest));
    const client = newClient({ store });
    assert.equal(await client.servesBlob(real, small.digest, store), true);
    assert.equal(await client.servesBlob(real, large.digest, store), true);
    assert.deepEqual(await client.fetchBlobBytes(real, small.digest), await store.readBytes(small.digest));
    assert.equal(await client.servesBlob({ registry: fx.registry.host, repository: 'test/elsewhere' }, large.digest, store), false);
  });

  test('what a registry served a tenant once is believed for that tenant only: another tenant\'s build asks again, and a registry that then lies is refused for it', async () => {
    const store = new FsContentStore(join(fx.dir, 'proofs-store'));
    const blob = randomBytes(1000);
    const stored = await store.put(blob);
    let honest = true;
    let gets = 0;
    const reg = await hostileRegistry({
      [`GET /v2/x/app/blobs/${stored.digest}`]: (res) => { gets++; res.writeHead(200); res.end(honest ? blob : randomBytes(1000)); },
    });
    try {
      const proofs = new ProvenBlobs();
      const repo = { registry: reg.host, repository: 'x/app' };
      const tenantA = newClient({ store, attempts: 1, proofs: proofs.forTenant('a') });
      assert.equal(await tenantA.servesBlob(repo, stored.digest, store), true);
      assert.equal(gets, 1);
      honest = false;
      // Tenant a was shown these bytes: its next build does not download them again.
      assert.deepEqual(await tenantA.fetchBlobBytes(repo, stored.digest), blob);
      assert.equal(gets, 1);
      // Tenant b (the same registry, now lying) is asked, and refused.
      const tenantB = newClient({ store, attempts: 1, proofs: proofs.forTenant('b') });
      await assert.rejects(tenantB.pullBlob(repo, stored.digest), /blob sha256:\w+ is not in x\/app/);
      assert.equal(gets, 2);
      // Nor does a's proof hold for another repository of the same registry.
      assert.equal(await tenantA.servesBlob({ registry: reg.host, repository: 'x/other' }, stored.digest, store), false);
    } finally {
      await reg.close();
    }
  });

  test('a manifest, token or error answer of endless megabytes is refused at 8 MiB (64 KiB for an error), not buffered whole; a declared-huge config is not fetched; a config longer than declared is cut off', async () => {
    const store = new FsContentStore(join(fx.dir, 'hostile-store'));
    const routes: Record<string, (res: import('node:http').ServerResponse) => void> = {
      'GET /v2/x/endless/manifests/1': endless(200),
      'GET /v2/x/declared/manifests/1': (res) => { res.writeHead(200, { 'content-length': String(10 ** 10) }); res.end(); },
      'GET /v2/x/hugecfg/manifests/1': json(manifestWith(10 ** 10)),
      'GET /v2/x/longcfg/manifests/1': json(manifestWith(config.length)),
      [`GET /v2/x/longcfg/blobs/${sha256Digest(config)}`]: endless(200),
      'GET /v2/x/error/manifests/1': endless(404),
      'GET /token': endless(200),
    };
    const reg = await hostileRegistry(routes);
    routes['GET /v2/x/auth/manifests/1'] = endless(401, { 'www-authenticate': `Bearer realm="http://${reg.host}/token",service="s"` });
    try {
      const client = newClient({ store, attempts: 1 });
      await assert.rejects(client.getManifest(`${reg.host}/x/endless:1`), /larger than 8 MiB/);
      await assert.rejects(client.getManifest(`${reg.host}/x/declared:1`), /larger than 8 MiB/);
      await assert.rejects(client.resolve(`${reg.host}/x/hugecfg:1`, 'linux/amd64'), /names an image config of 10000000000 bytes/);
      await assert.rejects(client.resolve(`${reg.host}/x/longcfg:1`, 'linux/amd64'), /more than the expected 37 bytes/);
      await assert.rejects(newClient({ attempts: 1 }).resolve(`${reg.host}/x/longcfg:1`, 'linux/amd64'), /more than the expected 37 bytes/, 'without a store too');
      await assert.rejects(client.getManifest(`${reg.host}/x/error:1`), (e: Error) => e instanceof RegistryError && e.message.length < 1000);
      await assert.rejects(client.getManifest(`${reg.host}/x/auth:1`), /token.*larger than 8 MiB/);
    } finally {
      await reg.close();
    }
  });
});

export type { ImageManifest };
