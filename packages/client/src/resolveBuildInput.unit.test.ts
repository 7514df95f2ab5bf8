// A git URL context is the server's to fetch: the client reads no file and uploads nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { ClientError } from './ClientError.js';
import { resolveBuildInput } from './resolveBuildInput.js';

test('git URL contexts: sent as contextUrl with -f inside the repository, or the Dockerfile from stdin', async () => {
  const git = await resolveBuildInput({ context: 'https://example.com/app.git#main:sub', file: './docker/app.Dockerfile', cwd: '/nonexistent' });
  assert.equal(git.contextUrl, 'https://example.com/app.git#main:sub');
  assert.equal(git.contextDir, undefined);
  assert.equal(git.dockerfileName, 'docker/app.Dockerfile');
  assert.equal(git.dockerfile.length, 0, 'the server reads the Dockerfile from the repository');
  const scp = await resolveBuildInput({ context: 'git@github.com:moby/buildkit.git', cwd: '/nonexistent' });
  assert.equal(scp.contextUrl, 'git@github.com:moby/buildkit.git');
  assert.equal(scp.dockerfileName, 'Dockerfile');
  const stdin = await resolveBuildInput({ context: 'git://h/r.git#v1', file: '-', cwd: '/nonexistent', stdin: Readable.from([Buffer.from('FROM scratch\n')]) });
  assert.equal(stdin.dockerfile.toString(), 'FROM scratch\n');
  await assert.rejects(resolveBuildInput({ context: 'https://h/r.git?tag=a&branch=b', cwd: '/' }), (e: unknown) => e instanceof ClientError && e.exitCode === 2 && /branch conflicts with tag/.test(e.message));
});
