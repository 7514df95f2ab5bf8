// The git source against a real git server on loopback (git http-backend and git daemon): refs,
// tags, commits and subdirs resolve as BuildKit's do, and every connection git opens obeys the
// build's network policy (here: 127.0.0.2 is refused, standing in for the cluster's addresses).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startGitServer, type GitServer } from '@buildyard/testkit';
import { fetchGit, GitFetchError, resolveGitCommit } from './fetchGit.js';
import { parseGitRef } from './gitRef.js';

let server: GitServer;
let denied: GitServer;
let shas: string[];
const dirs: string[] = [];
const refuse = (address: string) => (address === '127.0.0.2' ? 'test policy' : undefined);

before(async () => {
  server = await startGitServer({ daemon: true });
  denied = await startGitServer({ host: '127.0.0.2' });
  shas = server.commit('app', [
    { files: { 'Dockerfile': 'FROM scratch\n', 'sub/dir/a.txt': 'one\n', 'link': { link: '/etc' } }, tag: 'v1' },
    { files: { 'sub/dir/a.txt': 'two\n' } },
    { files: { 'sub/dir/a.txt': 'three\n' }, branch: 'feature' },
  ]);
  denied.commit('secret', [{ files: { 'x': 'secret\n' } }]);
});
after(async () => {
  await server.stop();
  await denied.stop();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function fetch(url: string) {
  const ref = parseGitRef(url)!;
  const workDir = await mkdtemp(join(tmpdir(), 'fetchgit-'));
  dirs.push(workDir);
  const commit = await resolveGitCommit({ ref, workDir, refuse });
  return { ...(await fetchGit({ ref, workDir, refuse, commit })), resolved: commit };
}

test('a branch, an annotated tag, a commit sha and HEAD check out the commit they name', async () => {
  const head = await fetch(`${server.http}/app.git`);
  assert.equal(head.commit, shas[1]);
  assert.equal(await readFile(join(head.dir, 'sub/dir/a.txt'), 'utf8'), 'two\n');
  const tag = await fetch(`${server.http}/app.git#v1`);
  assert.equal(tag.commit, shas[0]);
  assert.equal(tag.resolved, shas[0], 'ls-remote answers the tag\'s commit, not the tag object');
  assert.equal(await readFile(join(tag.dir, 'sub/dir/a.txt'), 'utf8'), 'one\n');
  const branch = await fetch(`${server.http}/app.git#feature:sub/dir`);
  assert.equal(branch.commit, shas[2]);
  assert.equal(await readFile(join(branch.dir, 'a.txt'), 'utf8'), 'three\n');
  const bySha = await fetch(`${server.http}/app.git#${shas[0]}`);
  assert.equal(bySha.commit, shas[0]);
  assert.equal(await readlink(join(bySha.dir, 'link')), '/etc', 'symlinks stay links');
  const query = await fetch(`${server.http}/app.git?branch=feature&subdir=sub`);
  assert.equal(await readFile(join(query.dir, 'dir/a.txt'), 'utf8'), 'three\n');
});

test('git:// goes through the same policy proxy', async () => {
  const got = await fetch(`${server.git}/app.git#v1:sub`);
  assert.equal(got.commit, shas[0]);
  assert.equal(await readFile(join(got.dir, 'dir/a.txt'), 'utf8'), 'one\n');
});

test('a refused address, directly or through a redirect, is one line naming the policy', async () => {
  const oneLine = (pattern: RegExp) => (e: unknown) => {
    assert.ok(e instanceof GitFetchError, String(e));
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'));
    return true;
  };
  await assert.rejects(fetch(`${denied.http}/secret.git`), oneLine(/127\.0\.0\.2 is not reachable from builds \(test policy\)/));
  await assert.rejects(fetch(`${server.http}/redirect/${new URL(denied.http).host}/secret.git`), oneLine(/127\.0\.0\.2 is not reachable from builds/));
  assert.ok(!denied.requests.some((r) => r.includes('secret.git')), `the refused server saw no request: ${denied.requests.join(', ')}`);
});

test('a subdir through a symlink, a missing ref and ssh URLs fail in one line', async () => {
  await assert.rejects(fetch(`${server.http}/app.git#v1:link`), /subdirectory "link" is not a directory/);
  await assert.rejects(fetch(`${server.http}/app.git#nope`), /no ref "nope" on the remote/);
  await assert.rejects(fetch('git@127.0.0.1:app.git'), /ssh git URLs need SSH credentials/);
  await assert.rejects(fetch(`${server.http}/missing.git`), GitFetchError);
  assert.equal((await stat(join(server.root, 'app.git'))).isDirectory(), true);
});

test('a server that accepts and never answers ends the fetch after the idle limit; an abort ends it at once and closes the connection', async () => {
  const { createServer } = await import('node:net');
  const sockets: import('node:net').Socket[] = [];
  const closed: Promise<void>[] = [];
  // Reading (and dropping) what arrives, so the peer's close is seen.
  const silent = createServer((s) => { sockets.push(s); closed.push(new Promise((r) => s.once('close', () => r()))); s.on('error', () => {}); s.resume(); });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  const port = (silent.address() as { port: number }).port;
  try {
    const ref = parseGitRef(`http://127.0.0.1:${port}/stall.git`)!;
    const workDir = await mkdtemp(join(tmpdir(), 'fetchgit-'));
    dirs.push(workDir);
    await assert.rejects(resolveGitCommit({ ref, workDir, refuse, idleTimeoutMs: 300 }), (e: unknown) => e instanceof GitFetchError && /127\.0\.0\.1:\d+ sent nothing for 300 ms/.test(e.message) && !e.message.includes('\n'));
    await Promise.all(closed);
    const abort = new AbortController();
    const pending = resolveGitCommit({ ref, workDir, refuse, signal: abort.signal });
    const before = sockets.length;
    await new Promise<void>((r) => { const check = () => (sockets.length > before ? r() : silent.once('connection', () => r())); check(); });
    abort.abort(new Error('cancelled by the test'));
    await assert.rejects(pending, /cancelled by the test/);
    await Promise.all(closed.slice(before));
  } finally {
    silent.close();
  }
});

test('a tree larger than the limits is refused before anything is checked out (a git bomb lists one blob many times); .git keeps no reflog naming this host', async () => {
  // 40 files of 1 KiB: the same blob, as a bomb lists one blob over and over.
  const files = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`d/f${i}`, 'x'.repeat(1024)]));
  server.commit('big', [{ files }]);
  const ref = parseGitRef(`${server.http}/big.git`)!;
  for (const [limits, why] of [[{ maxTreeBytes: 20 * 1024 }, /its files hold more than 20480 bytes/], [{ maxTreeFiles: 10 }, /it has more than 10 files/]] as const) {
    const workDir = await mkdtemp(join(tmpdir(), 'fetchgit-'));
    dirs.push(workDir);
    const commit = await resolveGitCommit({ ref, workDir, refuse });
    await assert.rejects(fetchGit({ ref, workDir, refuse, commit, ...limits }), (err: Error) => {
      assert.ok(err instanceof GitFetchError);
      assert.match(err.message, new RegExp(`^git .*big\\.git: commit ${commit.slice(0, 12)} is too large to check out: ${why.source}`));
      return true;
    });
    assert.deepEqual(await readdir(join(workDir, 'repo')), ['.git'], 'nothing was checked out');
  }
  const workDir = await mkdtemp(join(tmpdir(), 'fetchgit-'));
  dirs.push(workDir);
  const commit = await resolveGitCommit({ ref, workDir, refuse });
  const got = await fetchGit({ ref, workDir, refuse, commit, maxTreeBytes: 41 * 1024, maxTreeFiles: 40 });
  assert.equal((await readdir(join(got.dir, 'd'))).length, 40, 'within the limits it checks out');
  await assert.rejects(stat(join(got.dir, '.git/logs')), /ENOENT/, 'no reflog (it would name this host\'s user and the time)');
});

test('the attacker: a server that refuses a shallow fetch by sha, so the fetch falls back to fetching everything, is held to one byte budget over both fetches', async () => {
  // Protocol v0 (a client forced to it, as an old server would): it refuses a commit it does not
  // advertise, so fetchGit fetches every branch and tag instead, and v0 repeats the whole ref
  // advertisement for each fetch. 3,000 tags make that advertisement the bulk of the bytes.
  const [old] = server.commit('refs', [{ files: { 'a.txt': 'old\n' } }, { files: { 'a.txt': 'new\n' } }]);
  const bare = join(server.root, 'refs.git');
  const tags = Array.from({ length: 3000 }, (_, i) => `create refs/tags/release-${String(i).padStart(5, '0')} HEAD\n`).join('');
  execFileSync('git', ['-C', bare, 'update-ref', '--stdin'], { input: tags });
  const advertisement = (await (await globalThis.fetch(`${server.http}/refs.git/info/refs?service=git-upload-pack`)).arrayBuffer()).byteLength;
  assert.ok(advertisement > 150_000, `the advertisement is ${advertisement} bytes`);
  const gitV0 = join(server.root, 'git-v0');
  await writeFile(gitV0, '#!/bin/sh\nexec git -c protocol.version=0 "$@"\n', { mode: 0o755 });
  const ref = parseGitRef(`${server.http}/refs.git#${old}`)!;
  const attempt = async (maxBytes: number) => {
    const workDir = await mkdtemp(join(tmpdir(), 'fetchgit-'));
    dirs.push(workDir);
    return fetchGit({ ref, workDir, refuse, commit: old, maxBytes, gitBinary: gitV0 });
  };
  const requestsBefore = server.requests.length;
  // Either fetch alone stays within 1.5 advertisements; both together do not.
  const budget = Math.round(advertisement * 1.5);
  await assert.rejects(attempt(budget), (e: unknown) => e instanceof GitFetchError && new RegExp(`sent more than ${budget} bytes`).test(e.message) && !e.message.includes('\n'));
  assert.equal(server.requests.slice(requestsBefore).filter((r) => r.startsWith('GET /refs.git/info/refs')).length, 2, 'it did fall back to the second fetch');
  const got = await attempt(advertisement * 3);
  assert.equal(got.commit, old, 'with room for both fetches, the fallback finds the commit');
  assert.equal(await readFile(join(got.dir, 'a.txt'), 'utf8'), 'old\n');
});
