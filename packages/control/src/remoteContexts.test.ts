// An http(s) build context through RemoteContexts with a real loopback web server and context store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContextStore } from '@buildyard/context';
import { RemoteContexts, type SourceProgress } from './remoteContexts.js';

const progress: SourceProgress = { started: async () => {}, cached: async () => {}, finished: async () => {}, failed: async () => {} };

test('an http context that is one file: filename= names a path inside the context, `..` stopping at its root, never a file of the frontend', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'remote-context-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const scratch = join(base, 'scratch');
  const outside = join(base, 'frontend-etc');
  mkdirSync(scratch);
  mkdirSync(outside);
  const server = createServer((_req, res) => res.end('FROM scratch\n')).listen(0, '127.0.0.1');
  t.after(() => server.close());
  await new Promise((ok) => server.once('listening', ok));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/Dockerfile`;
  const contexts = new RemoteContexts({ contexts: new ContextStore({ root: join(base, 'contexts') }), scratchDir: scratch });
  // The attacker's name climbs out of the scratch directory to a directory of the frontend's.
  const escaping = `${'../'.repeat(20)}${outside.slice(1)}/cron-job`;
  const got = await contexts.httpBuildContext('tenant-a', url, { dockerfileName: escaping, ignoreDockerignore: true }, progress, new AbortController().signal);
  assert.equal(got.dockerfile.toString(), 'FROM scratch\n', 'the Dockerfile is read from where the name points inside the context');
  assert.deepEqual(readdirSync(outside), [], 'nothing is written outside the context');
  assert.equal(existsSync(join(outside, 'cron-job')), false);
  const plain = await contexts.httpBuildContext('tenant-a', url, { dockerfileName: 'sub/Dockerfile.app', ignoreDockerignore: true }, progress, new AbortController().signal);
  assert.equal(plain.dockerfile.toString(), 'FROM scratch\n');
});
