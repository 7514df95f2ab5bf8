// ${var#pattern}, ${var%pattern} and ${var/pattern/repl} patterns: Go regexp's answers (here: a
// JavaScript RegExp on small inputs, which agrees with Go where no newline is involved), in linear
// time on an attacker's patterns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ShellPattern } from './shellPattern.js';
import { expandWord, WordExpansionError } from './expandWord.js';

/** convertShellPatternToRegex's regexp, run by JavaScript's backtracking engine: the reference. */
function reference(pattern: string, greedy: boolean, anchored: boolean): RegExp {
  let out = anchored ? '^' : '';
  for (const ch of pattern) out += ch === '*' ? (greedy ? '.*' : '.*?') : ch === '?' ? '.' : ch;
  return new RegExp(out, 'u');
}

const word = fc.string({ unit: fc.constantFrom('a', 'b', 'c'), maxLength: 12 });
const pattern = fc.string({ unit: fc.constantFrom('a', 'b', '*', '?'), maxLength: 6 });

test('find answers as a regexp does: leftmost, longest with greedy stars, shortest with lazy ones when anchored', () => {
  fc.assert(fc.property(pattern, word, fc.boolean(), (p, v, anchored) => {
    const chars = Array.from(v);
    for (const greedy of anchored ? [true, false] : [true]) {
      const m = reference(p, greedy, anchored).exec(v);
      assert.deepEqual(new ShellPattern(p).find(chars, 0, anchored, greedy), m ? [m.index, m.index + m[0].length] : undefined, `${p} ${v} anchored=${anchored} greedy=${greedy}`);
    }
  }), { numRuns: 3000 });
});

test('replaceAll as Go\'s ReplaceAllString: an empty match right after a match is not replaced', () => {
  const all = (p: string, v: string, r: string) => new ShellPattern(p).replaceAll(Array.from(v), r);
  assert.equal(all('b', 'abcb', '-'), 'a-c-');
  assert.equal(all('*', 'abc', '-'), '-', 'one greedy match of everything, then an empty one at the end that abuts it');
  assert.equal(all('', 'ab', '-'), '-a-b-');
  assert.equal(expandWord('${X//a?/<>}', new Map([['X', 'aXbaYc']])), '<>b<>c');
  assert.equal(expandWord('${X/\\*/+}', new Map([['X', 'a*b*']])), 'a+b*');
});

test('stars and ? do not match a newline, as Go\'s . does not', () => {
  const env = new Map([['X', 'a\nb']]);
  assert.equal(expandWord('${X#*b}', env), 'a\nb');
  assert.equal(expandWord('${X#a?}', env), 'a\nb');
  assert.equal(expandWord('${X%%\\*}', new Map([['X', 'x*']])), 'x');
});

test('an attacker\'s pattern against a long value answers (a backtracking regexp ran for minutes), and work past the limit is refused in one line', () => {
  const env = new Map([['X', 'a'.repeat(20_000)]]);
  const nasty = '*a'.repeat(12) + '*b';
  for (const op of ['#', '##', '%', '%%']) assert.equal(expandWord(`\${X${op}${nasty}}`, env), env.get('X'), op);
  assert.equal(expandWord(`\${X/${nasty}/c}`, env), env.get('X'));
  assert.equal(expandWord(`\${X//${nasty}/c}`, env), env.get('X'));
  const huge = new Map([['X', 'a'.repeat(200_000)]]);
  assert.throws(() => expandWord(`\${X//${'*a'.repeat(1_000)}*b/c}`, huge), (e: Error) => e instanceof WordExpansionError && /exceeds the work one build's substitutions may do/.test(e.message) && e.message.length < 500);
});
