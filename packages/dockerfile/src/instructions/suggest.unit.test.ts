// BuildKit's "(did you mean X?)" search: the same answers as a full Levenshtein table, without its
// quadratic cost on an attacker's long names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { suggest } from './suggest.js';

/** util/suggest.Search with the whole table: the reference the banded search must agree with. */
function reference(value: string, options: string[], caseSensitive: boolean): string | undefined {
  const distance = (a: string[], b: string[]) => {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
      const cur = [i];
      for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
    return prev[b.length];
  };
  const val = caseSensitive ? value : value.toLowerCase();
  let match: string | undefined;
  let min = 3;
  for (const o of options) {
    const opt = caseSensitive ? o : o.toLowerCase();
    if (val === opt) return undefined;
    const d = distance(Array.from(val), Array.from(opt));
    if (d < min) { match = opt; min = d; }
  }
  return match;
}

test('suggest gives the closest option within distance 2, as a full Levenshtein table does', () => {
  assert.equal(suggest('RNU', ['RUN', 'FROM'], false), 'RUN');
  assert.equal(suggest('BULIDPLATFORM', ['BUILDPLATFORM', 'TARGETPLATFORM'], true), 'BUILDPLATFORM');
  assert.equal(suggest('abc', ['xyz'], true), undefined);
  const word = fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'é'), maxLength: 9 });
  fc.assert(fc.property(word, fc.array(word, { maxLength: 8 }), (value, options) => {
    assert.equal(suggest(value, options, true), reference(value, options, true));
  }), { numRuns: 2000 });
});

test('suggest over 10,000 long names that share a prefix with the word answers (a hostile Dockerfile\'s stage or ARG names)', () => {
  const prefix = 'a'.repeat(250);
  const options = Array.from({ length: 10_000 }, (_, i) => `${prefix}${i.toString(36).padStart(4, 'z')}`);
  assert.equal(suggest(`${prefix}zzz_`, options, true), `${prefix}zzz0`);
  assert.equal(suggest(`${prefix}qqqqqq`, options, true), undefined);
});
