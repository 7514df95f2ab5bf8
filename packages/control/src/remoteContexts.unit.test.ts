// A git checkout's .dockerignore applies to the stored entries as a client walk applies it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ContextEntry } from '@buildyard/context';
import { filterEntries, keepGitDirArg } from './remoteContexts.js';

const dir = (path: string): ContextEntry => ({ path, mode: 0o40755, size: 0, digest: '', linkTarget: '' });
const file = (path: string): ContextEntry => ({ path, mode: 0o100644, size: 1, digest: 'sha256:' + 'a'.repeat(64), linkTarget: '' });

test('filterEntries: excluded files and directories go, a ! exception keeps its parents, the order stays sorted', () => {
  const entries = [file('a.txt'), dir('a'), file('a/keep.txt'), file('a/x.log'), dir('node_modules'), file('node_modules/m.js'), file('z.log')];
  const kept = filterEntries(entries, ['*.log', 'a/*', '!a/keep.txt', 'node_modules']).map((e) => e.path);
  assert.deepEqual(kept, ['a', 'a/keep.txt', 'a.txt'], 'sorted as manifests are (by path component)');
  assert.deepEqual(filterEntries(entries, []).map((e) => e.path), entries.map((e) => e.path));
});

test('BUILDKIT_CONTEXT_KEEP_GIT_DIR reads as Go\'s ParseBool', () => {
  assert.equal(keepGitDirArg({ BUILDKIT_CONTEXT_KEEP_GIT_DIR: '1' }), true);
  assert.equal(keepGitDirArg({ BUILDKIT_CONTEXT_KEEP_GIT_DIR: 'false' }), false);
  assert.equal(keepGitDirArg({ BUILDKIT_CONTEXT_KEEP_GIT_DIR: 'maybe' }), undefined);
  assert.equal(keepGitDirArg({}), undefined);
});
