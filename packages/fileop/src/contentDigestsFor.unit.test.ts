// contentDigestsFor reads a whole synced file list in one pass when the list is already in the
// walk's order; what it gives must be exactly what the general walk gives (the cache keys of
// every COPY . and bind mount of the context depend on it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contentDigestsFor } from './contentDigestsFor.js';
import type { TreeEntry } from './SourceTree.js';

/** A deterministic pseudo-random generator (mulberry32): the same trees on every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Names whose bytewise order differs from a naive string or path order: '-' and '.' sort below
// '/', 'é' and '😀' (a surrogate pair) above 'z' and above U+E000.
const NAMES = ['a', 'a-b', 'a.b', 'b', 'z', 'é', '\ue000', '😀', 'A', '0', 'a b'];

function depthFirst(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a.replaceAll('/', '\0')), Buffer.from(b.replaceAll('/', '\0')));
}

/** A random tree as a synced context lists it: every directory listed, depth-first order. */
function tree(next: () => number): TreeEntry[] {
  const out: TreeEntry[] = [];
  const fill = (dir: string, depth: number) => {
    for (const name of NAMES) {
      if (next() < 0.55) continue;
      const path = dir ? `${dir}/${name}` : name;
      const kind = next();
      if (kind < 0.25 && depth < 3) {
        out.push({ path, type: 'dir', mode: next() < 0.5 ? 0o755 : 0o700 });
        fill(path, depth + 1);
      } else if (kind < 0.4) {
        out.push({ path, type: 'symlink', mode: 0o777, linkTarget: next() < 0.5 ? '../a' : '/etc/passwd' });
      } else {
        out.push({ path, type: 'file', mode: next() < 0.8 ? 0o644 : 0o4755, size: Math.floor(next() * 100), digest: `sha256:${Math.floor(next() * 1e9).toString(16).padStart(64, '0')}` });
      }
    }
  };
  fill('', 0);
  return out.sort((x, y) => depthFirst(x.path, y.path));
}

test('a whole synced list gives what the general walk gives, for 300 random trees and every way of naming the root', async () => {
  const next = random(18);
  for (let i = 0; i < 300; i++) {
    const entries = tree(next);
    const sources = [['.'], ['/'], ['./'], ['.', '/'], ['a/..']][i % 5]!;
    const direct = await contentDigestsFor({ entries, sources });
    // Out of order, the list is no longer the walk's: the general path plans it.
    const walked = await contentDigestsFor({ entries: [...entries].reverse(), sources });
    assert.deepEqual(direct, walked, `tree ${i}: ${entries.map((e) => e.path).join(' ')}`);
    // In plain string order ('a-b' before 'a/x'), it is not the walk's order either.
    const naive = [...entries].sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    assert.deepEqual(await contentDigestsFor({ entries: naive, sources }), walked, `tree ${i} in string order`);
  }
});

test('a list that is not the walk\'s (a directory left implied, an unclean path) or a selection that is not the whole still goes the general way', async () => {
  const file = (path: string): TreeEntry => ({ path, type: 'file', mode: 0o644, size: 1, digest: `sha256:${'1'.repeat(64)}` });
  // The general walk implies the missing directory "d" (0755) and cleans "./e".
  const implied = await contentDigestsFor({ entries: [file('d/f'), file('./e')], sources: ['.'] });
  assert.deepEqual(implied.map((d) => [d.path, d.type, d.mode]), [['.', 'dir', 0o755], ['d', 'dir', 0o755], ['d/f', 'file', 0o644], ['e', 'file', 0o644]]);
  const entries = [{ path: 'd', type: 'dir', mode: 0o755 } as TreeEntry, file('d/f'), file('d/g')];
  assert.deepEqual((await contentDigestsFor({ entries, sources: ['.'], exclude: ['d/g'] })).map((d) => d.path), ['.', 'd', 'd/f']);
  assert.deepEqual((await contentDigestsFor({ entries, sources: ['d'] })).map((d) => d.path), ['d', 'd/f', 'd/g']);
});
