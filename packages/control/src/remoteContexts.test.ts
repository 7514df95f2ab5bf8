// An http(s) build context through RemoteContexts with a real loopback web server and context store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

test('the attacker: an http context archive with a setuid file and a block device of the host\'s disk is unpacked where only the frontend reaches it, then refused and removed', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'remote-context-'));
  t.after(() => rmSync(base, { recursive: true, force: true }));
  const scratch = join(base, 'scratch');
  const made = join(base, 'made');
  mkdirSync(scratch);
  mkdirSync(made);
  writeFileSync(join(made, 'Dockerfile'), 'FROM scratch\n');
  writeFileSync(join(made, 'rootshell'), '#!/bin/sh\n');
  chmodSync(join(made, 'rootshell'), 0o4755);
  execFileSync('mknod', ['-m', '0666', join(made, 'disk'), 'b', '8', '0']);
  execFileSync('tar', ['-cf', join(base, 'ctx.tar'), '-C', made, '.']);
  const modes: number[] = [];
  const server = createServer((_req, res) => {
    // While the frontend downloads, its work directory exists: no other user may enter it.
    for (const name of readdirSync(scratch)) modes.push(statSync(join(scratch, name)).mode & 0o7777);
    res.end(readFileSync(join(base, 'ctx.tar')));
  }).listen(0, '127.0.0.1');
  t.after(() => server.close());
  await new Promise((ok) => server.once('listening', ok));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/ctx.tar`;
  const contexts = new RemoteContexts({ contexts: new ContextStore({ root: join(base, 'contexts') }), scratchDir: scratch });
  await assert.rejects(contexts.httpBuildContext('tenant-a', url, { dockerfileName: 'Dockerfile' }, progress, new AbortController().signal),
    /^Error: context http:\/\/127\.0\.0\.1:\d+\/ctx\.tar: disk is a block device; a build context can only hold files, directories and symlinks/);
  assert.deepEqual(modes, [0o700]);
  assert.deepEqual(readdirSync(scratch), [], 'nothing of the archive stays on the frontend');
});
