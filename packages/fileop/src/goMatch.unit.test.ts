import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseChmod } from './chmodSpec.js';
import { FileOpError } from './FileOpError.js';
import { goMatch, hasWildcard } from './goMatch.js';

test('goMatch follows Go path.Match', () => {
  const cases: Array<[string, string, boolean]> = [
    ['*.txt', 'a.txt', true], ['*.txt', '.hidden.txt', true], ['*.txt', 'dir/a.txt', false],
    ['a?c', 'abc', true], ['a?c', 'a/c', false], ['a?c', 'ac', false],
    ['[a-c]x', 'bx', true], ['[a-c]x', 'dx', false], ['[^a-c]x', 'dx', true], ['[^a-c]x', 'ax', false],
    ['\\*', '*', true], ['\\*', 'a', false], ['a*b*c', 'axxbyyc', true], ['a*b*c', 'axxbyy', false],
    ['*', '', true], ['dir/*', 'dir/x', true], ['*/x', 'dir/x', true], ['[日本]', '本', true],
  ];
  for (const [p, s, want] of cases) assert.equal(goMatch(p, s), want, `${p} vs ${s}`);
});

test('goMatch rejects malformed patterns like Go (ErrBadPattern)', () => {
  for (const p of ['[', '[a', '[]a]', 'a\\', '[a-]', 'x[']) {
    assert.throws(() => goMatch(p, 'zzz'), (e: unknown) => e instanceof FileOpError && e.code === 'EBADPATTERN', p);
  }
});

test('hasWildcard ignores escaped metacharacters', () => {
  assert.equal(hasWildcard('a/*.txt'), true);
  assert.equal(hasWildcard('file[1].txt'), true);
  assert.equal(hasWildcard('plain/name.txt'), false);
  assert.equal(hasWildcard('esc\\*aped'), false);
});

test('parseChmod: octal forms', () => {
  assert.equal(parseChmod('755')(0o600, false), 0o755);
  assert.equal(parseChmod('0644')(0o777, true), 0o644);
  assert.equal(parseChmod('4755')(0, false), 0o4755);
});

test('parseChmod: symbolic forms like chmod(1)', () => {
  assert.equal(parseChmod('u+x,g-w')(0o664, false), 0o744);
  assert.equal(parseChmod('a=rX')(0o640, false), 0o444);
  assert.equal(parseChmod('a=rX')(0o640, true), 0o555);
  assert.equal(parseChmod('a=rX')(0o740, false), 0o555);
  assert.equal(parseChmod('go=u')(0o700, false), 0o777);
  assert.equal(parseChmod('+x')(0o644, false), 0o755);
  assert.equal(parseChmod('o-rwx')(0o777, false), 0o770);
  assert.equal(parseChmod('u+s,+t')(0o755, false), 0o5755);
  assert.equal(parseChmod('g=')(0o2775, true), 0o705);
});

test('parseChmod rejects nonsense with a usable message', () => {
  for (const bad of ['abc', '999', 'u+q', '', 'u+x,,g-w', '77777']) {
    assert.throws(() => parseChmod(bad), (e: unknown) => e instanceof FileOpError && e.code === 'EBADCHMOD' && /--chmod/.test(e.message), bad);
  }
});

test('goMatch answers as the glob\'s regexp on small inputs, and in linear time on an attacker\'s pattern', () => {
  // No class here matches '/': Go's leftmost chunk matching (which goMatch follows) and a
  // RegExp then agree; `*[^b]*` on `a/` is false in Go (its star never backs up), true as a RegExp.
  const part = fc.constantFrom('a', 'b', '/', '*', '**', '?', '[a]', '[^b/]', '[a-c]', '\\*');
  // The reference: the same glob as a RegExp (these small inputs cannot make it backtrack long).
  const toRegExp = (pattern: string) => {
    let re = '';
    for (const token of pattern.match(/\\.|\[[^\]]*\]|./g) ?? []) {
      re += token === '*' ? '[^/]*' : token === '?' ? '[^/]' : token.startsWith('[') || token.startsWith('\\') ? token : token.replace(/[.+()|{}$^/]/g, '\\$&');
    }
    return new RegExp(`^${re}$`, 'u');
  };
  fc.assert(fc.property(fc.array(part, { maxLength: 6 }), fc.string({ unit: fc.constantFrom('a', 'b', 'c', '/', '*'), maxLength: 8 }), (parts, name) => {
    const pattern = parts.join('');
    assert.equal(goMatch(pattern, name), toRegExp(pattern).test(name), `${pattern} on ${name}`);
  }), { numRuns: 3000 });
  assert.equal(goMatch(`${'*a'.repeat(12)}*b`, 'a'.repeat(250)), false);
  assert.equal(goMatch(`${'*a'.repeat(12)}*b`, `${'a'.repeat(250)}b`), true);
  assert.equal(goMatch('*[^b]*', 'a/'), false, 'as Go\'s path.Match answers');
});
