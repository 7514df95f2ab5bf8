import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BuilderStore, DEFAULT_ENDPOINT, defaultBuildersPath, parseEndpoint } from './BuilderStore.js';
import { ClientError } from './ClientError.js';

test('builder store: create, use, resolve with env overrides, remove', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-builders-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = defaultBuildersPath({ XDG_CONFIG_HOME: dir });
  assert.equal(path, join(dir, 'buildyard', 'builders.json'));
  const store = new BuilderStore(path);

  // Nothing configured: the local default endpoint, token from BUILDYARD_TOKEN.
  const def = await store.resolve(undefined, { BUILDYARD_TOKEN: ' t0 \n' });
  assert.deepEqual([def.name, def.endpoint, def.address, def.tls, def.token, def.source], ['default', DEFAULT_ENDPOINT, '127.0.0.1:8372', false, 't0', 'default']);

  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'secret-token\n');
  await store.create({ name: 'prod', endpoint: 'tls://build.example.com:443', tokenFile, tls: { ca: join(dir, 'ca.pem') } });
  await store.create({ name: 'local', endpoint: 'tcp://127.0.0.1:9000' });
  // The first builder becomes current; --use moves it.
  assert.equal((await store.list()).current, 'prod');
  assert.equal((await stat(path)).mode & 0o777, 0o600);

  const prod = await store.resolve(undefined, { BUILDYARD_TOKEN: 'ignored' });
  assert.deepEqual([prod.name, prod.address, prod.tls, prod.token, prod.tlsFiles?.ca, prod.source], ['prod', 'build.example.com:443', true, 'secret-token', join(dir, 'ca.pem'), 'current']);

  await store.use('local');
  assert.equal((await store.resolve(undefined, {})).name, 'local');
  assert.equal((await store.resolve(undefined, { BUILDYARD_BUILDER: 'prod' })).name, 'prod');
  const direct = await store.resolve(undefined, { BUILDYARD_BUILDER: 'tcp://10.1.2.3:7000', BUILDYARD_TOKEN: 'ci' });
  assert.deepEqual([direct.address, direct.token, direct.source], ['10.1.2.3:7000', 'ci', 'env']);
  assert.equal((await store.resolve('prod', { BUILDYARD_BUILDER: 'local' })).name, 'prod');

  await assert.rejects(store.resolve('nope', {}), (e: ClientError) => e.exitCode === 2 && /no builder named "nope"/.test(e.message));
  await assert.rejects(store.create({ name: 'local', endpoint: 'tcp://h:1' }), /already exists/);
  await assert.rejects(store.create({ name: 'bad name', endpoint: 'tcp://h:1' }), /not valid/);
  await assert.rejects(store.create({ name: 'x', endpoint: 'http://h:1' }), /tcp:\/\/host:port/);
  await assert.rejects(store.create({ name: 'y', endpoint: 'tls://h:1', tls: { cert: 'c.pem' } }), /go together/);

  await store.remove('local');
  const after = await store.list();
  assert.deepEqual(after.builders.map((b) => b.name), ['prod']);
  assert.equal(after.current, undefined);
  assert.equal(JSON.parse(await readFile(path, 'utf8')).builders.length, 1);
  await assert.rejects(store.remove('local'), /no builder named/);
});

test('endpoints: tcp and tls with host:port only', () => {
  assert.deepEqual(parseEndpoint('tcp://127.0.0.1:8372'), { address: '127.0.0.1:8372', tls: false });
  assert.deepEqual(parseEndpoint('tls://b.example:443/'), { address: 'b.example:443', tls: true });
  for (const bad of ['127.0.0.1:8372', 'tcp://host', 'tcp://h:99999', 'unix:///run/b.sock']) assert.throws(() => parseEndpoint(bad), /not valid/);
});
