import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '@buildyard/oci';
import { freePort, startRegistry } from '@buildyard/testkit';
import { ClientError, ExitCode } from './ClientError.js';
import { login } from './login.js';

test('login verifies against /v2/ and writes a docker config.json', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-login-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const reg = await startRegistry({ login: { user: 'alice', password: 's3cret' } });
  t.after(() => reg.stop());
  const configPath = join(dir, 'docker', 'config.json');

  await assert.rejects(
    login({ registry: reg.host, username: 'alice', password: 'wrong', configPath }),
    (e: ClientError) => e.exitCode === ExitCode.Unreachable && e.message.includes('refused the credentials of "alice"'),
  );
  await assert.rejects(stat(configPath), /ENOENT/, 'nothing is written when the registry refuses');

  // Other keys of an existing config survive.
  await mkdir(join(dir, 'docker'), { recursive: true });
  await writeFile(configPath, JSON.stringify({ auths: { 'other.example.com': { auth: 'eDp5' } }, credsStore: '' }));
  const written = await login({ registry: reg.host, username: 'alice', password: 's3cret', configPath });
  assert.equal(written, configPath);
  const doc = JSON.parse(await readFile(configPath, 'utf8'));
  assert.deepEqual(doc.auths[reg.host], { auth: Buffer.from('alice:s3cret').toString('base64') });
  assert.ok(doc.auths['other.example.com'], 'existing entries are kept');
  assert.equal((await stat(configPath)).mode & 0o777, 0o600);

  // The stored credentials are what the registry client uses.
  const anonymous = new RegistryClient({ dockerConfig: false, attempts: 1 });
  await assert.rejects(anonymous.listTags(`${reg.host}/a/b`), /HTTP 401/);
  const authed = new RegistryClient({ dockerConfig: configPath, attempts: 1 });
  assert.deepEqual(await authed.listTags(`${reg.host}/a/b`), []);
});

test('login to an unreachable registry names it', async () => {
  const port = await freePort();
  await assert.rejects(login({ registry: `127.0.0.1:${port}`, username: 'a', password: 'b', configPath: '/nonexistent/config.json', timeoutMs: 2000 }),
    (e: ClientError) => e.exitCode === ExitCode.Unreachable && e.message.includes(`cannot reach 127.0.0.1:${port}`));
});
