// The regexps moby/patternmatcher writes, matched without backtracking: the same answers as a
// RegExp, and linear time on an attacker's .dockerignore or --exclude patterns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GlobProgram } from './globProgram.js';
import { compileDockerignore } from './patternmatcher.js';

test('GlobProgram answers as the RegExp of the same source', () => {
  const part = fc.constantFrom('(.*/)?', '.*', '[^/]*', '[^/]', 'a', 'b', '/', '\\.', '[ab]', '[^a]*', '\\d', '^', '[a-c]');
  const text = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '/', '.', '1', '\n'), maxLength: 10 });
  fc.assert(fc.property(fc.array(part, { maxLength: 7 }), text, (parts, t) => {
    const source = parts.join('');
    assert.equal(new GlobProgram(source).test(t), new RegExp(`^${source}$`, 's').test(t), `${JSON.stringify(source)} on ${JSON.stringify(t)}`);
  }), { numRuns: 5000 });
});

test('an attacker\'s .dockerignore or --exclude patterns against long names and deep paths answer (a RegExp backtracked for minutes)', () => {
  const stars = compileDockerignore([`${'*a'.repeat(12)}*b`]);
  assert.equal(stars.excludes('a'.repeat(3_000)), false);
  assert.equal(stars.excludes(`${'a'.repeat(3_000)}b`), true);
  const dirs = compileDockerignore([`${'**/'.repeat(12)}x`]);
  assert.equal(dirs.excludes(`${'a/'.repeat(60)}b`), false);
  assert.equal(dirs.excludes(`${'a/'.repeat(60)}x`), true);
  assert.equal(compileDockerignore([`${'[ab]*'.repeat(10)}c`]).excludes('ab'.repeat(2_000)), false);
});
