import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentialsFor, dockerConfigPath, loadDockerConfig, normalizeRegistryHost, parseDockerConfig } from './credentials.js';
import { parseWwwAuthenticate } from './authChallenge.js';
import { isLoopbackHost, RegistryClient } from './RegistryClient.js';

test('config.json: auth base64, username/password, identitytoken, hub keys', () => {
  const map = parseDockerConfig(JSON.stringify({
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:p:with:colons').toString('base64') },
      'ghcr.io': { username: 'gh', password: 'tok' },
      'https://registry.example.com/v2/': { identitytoken: 'refresh-me' },
      'empty.example': {},
    },
    credsStore: 'desktop',
  }));
  assert.deepEqual(credentialsFor(map, 'docker.io'), { username: 'hubuser', password: 'p:with:colons' });
  assert.deepEqual(credentialsFor(map, 'registry-1.docker.io'), { username: 'hubuser', password: 'p:with:colons' });
  assert.deepEqual(credentialsFor(map, 'ghcr.io'), { username: 'gh', password: 'tok' });
  assert.deepEqual(credentialsFor(map, 'registry.example.com'), { identityToken: 'refresh-me' });
  assert.equal(credentialsFor(map, 'empty.example'), undefined);
  assert.equal(credentialsFor(map, 'quay.io'), undefined);
});

test('config.json errors are one line naming the file', () => {
  assert.throws(() => parseDockerConfig('{nope', '/x/config.json'), /^Error: cannot parse \/x\/config.json: .*; fix or remove the file$/);
  assert.throws(() => parseDockerConfig(JSON.stringify({ auths: { h: { auth: Buffer.from('nocolon').toString('base64') } } })), /invalid "auth" for h/);
});

test('config path from DOCKER_CONFIG, file loading, missing file is empty', async () => {
  assert.equal(dockerConfigPath({ DOCKER_CONFIG: '/cfg' }), '/cfg/config.json');
  assert.match(dockerConfigPath({}), /\.docker\/config\.json$/);
  const dir = await mkdtemp(join(tmpdir(), 'oci-cfg-'));
  try {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { '127.0.0.1:5000': { username: 'u', password: 'p' } } }));
    assert.deepEqual(await loadDockerConfig(join(dir, 'config.json')), { '127.0.0.1:5000': { username: 'u', password: 'p' } });
    assert.deepEqual(await loadDockerConfig(join(dir, 'missing.json')), {});
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.equal(normalizeRegistryHost('HTTP://LocalHost:5000/v2/'), 'localhost:5000');
});

test('WWW-Authenticate: bearer params, quoted commas, several challenges', () => {
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm", Bearer realm="http://127.0.0.1:1/t",service=reg'), [
    { scheme: 'basic', params: { realm: 'Registry Realm' } },
    { scheme: 'bearer', params: { realm: 'http://127.0.0.1:1/t', service: 'reg' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate('Bearer realm="a\\"b" , error="insufficient_scope"'), [
    { scheme: 'bearer', params: { realm: 'a"b', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseWwwAuthenticate(''), []);
});

test('plain http only for loopback or insecure hosts', () => {
  for (const h of ['127.0.0.1:5000', '127.1.2.3', 'localhost:5000', '[::1]:5000', '::1']) assert.equal(isLoopbackHost(h), true, h);
  for (const h of ['10.0.0.1:5000', 'registry.example.com', '128.0.0.1', 'localhost.evil.com']) assert.equal(isLoopbackHost(h), false, h);
  const c = new RegistryClient({ insecureHosts: ['10.0.0.1:5000'], dockerConfig: false });
  assert.equal(c.baseUrl('127.0.0.1:5000'), 'http://127.0.0.1:5000');
  assert.equal(c.baseUrl('10.0.0.1:5000'), 'http://10.0.0.1:5000');
  assert.equal(c.baseUrl('ghcr.io'), 'https://ghcr.io');
  assert.equal(c.baseUrl('docker.io'), 'https://registry-1.docker.io');
});
