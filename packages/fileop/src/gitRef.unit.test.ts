import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isGitTransport, parseGitRef } from './gitRef.js';

test('git URLs as BuildKit parses them', () => {
  assert.deepEqual(parseGitRef('https://github.com/moby/buildkit.git#v0.12:docs/a/../b'), {
    scheme: 'https', remote: 'https://github.com/moby/buildkit.git', host: 'github.com', ref: 'v0.12', subdir: 'docs/b', shortName: 'buildkit',
  });
  assert.equal(parseGitRef('https://example.com/file.tar.gz'), undefined, 'http(s) without .git is not a repository');
  assert.equal(parseGitRef('./dir'), undefined);
  assert.equal(parseGitRef('docker-image://alpine'), undefined);
  const scp = parseGitRef('git@github.com:moby/buildkit.git#main:frontend')!;
  assert.deepEqual([scp.scheme, scp.remote, scp.ref, scp.subdir], ['ssh', 'git@github.com:moby/buildkit.git', 'main', 'frontend']);
  const g = parseGitRef('git://host:9418/repo#abc')!;
  assert.deepEqual([g.scheme, g.remote, g.ref], ['git', 'git://host:9418/repo', 'abc']);
  assert.equal(parseGitRef('ssh://git@host/repo.git')!.scheme, 'ssh');
  assert.equal(parseGitRef('https://h/r.git#:/../../etc')!.subdir, 'etc', '.. cannot climb out of the repository');
  const q = parseGitRef('https://h/r.git?tag=v1&subdir=x&keep-git-dir=true&checksum=abc')!;
  assert.deepEqual([q.ref, q.subdir, q.keepGitDir, q.checksum], ['refs/tags/v1', 'x', true, 'abc']);
  assert.equal(parseGitRef('https://h/r.git?branch=dev')!.ref, 'refs/heads/dev');
  assert.throws(() => parseGitRef('https://h/r.git?ref=b#a'), /ref conflicts/);
  assert.throws(() => parseGitRef('https://h/r.git?ref=a&ref=b'), /multiple values/);
  assert.throws(() => parseGitRef('https://h/r.git?tag=a&branch=b'), /branch conflicts with tag/);
  // A ref is passed to git fetch: one that begins with "-" would be read as an option (--stdin, --dry-run).
  assert.throws(() => parseGitRef('https://h/r.git#--stdin'), /ref "--stdin" begins with "-", which no git ref does/);
  assert.throws(() => parseGitRef('https://h/r.git?ref=-x'), /begins with "-"/);
  assert.throws(() => parseGitRef('https://h/r.git?foo=1'), /unexpected query "foo"/);
  assert.ok(isGitTransport('git@github.com:a/b') && isGitTransport('https://x/y') && !isGitTransport('/tmp/x'));
});
