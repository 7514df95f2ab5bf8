// canonicalJson's fast path (JSON.stringify with the sorted list of all keys) writes exactly
// what the plain recursive definition writes, for any JSON-like value a plan can hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalJson } from './index.js';

/** The definition: keys sorted per object, undefined members dropped, undefined items null. */
function byDefinition(value: unknown): string {
  if (value === null || typeof value !== 'object') return value === undefined ? 'null' : JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(byDefinition).join(',') + ']';
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + byDefinition(obj[k])).join(',') + '}';
}

const leaf = fc.oneof(fc.constant(undefined), fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true }), fc.string(), fc.string({ unit: 'binary', maxLength: 4 }));
const key = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('0', '1', '10', '2', 'a', 'B', 'é', '\u{1F600}', 'constructor', 'toString', 'hasOwnProperty'));
const { value } = fc.letrec((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('value'), { maxLength: 5 }), fc.dictionary(key, tie('value'), { maxKeys: 5 })),
}));

test('canonicalJson equals the recursive definition on any JSON-like value', () => {
  fc.assert(fc.property(value, (v) => { assert.equal(canonicalJson(v), byDefinition(v)); }), { numRuns: 2000 });
});

test('canonicalJson falls back for what JSON.stringify writes otherwise: toJSON, class instances, a own __proto__ key', () => {
  const withToJson = { b: 1, a: { toJSON: () => 'x', k: 2 } };
  assert.equal(canonicalJson(withToJson), byDefinition(withToJson));
  class Point { constructor(readonly y: number, readonly x: number) {} }
  assert.equal(canonicalJson({ p: new Point(2, 1) }), '{"p":{"x":1,"y":2}}');
  const own = JSON.parse('{"__proto__": {"z": 1}, "a": 2}') as unknown;
  assert.equal(canonicalJson(own), byDefinition(own));
  assert.equal(canonicalJson([new Date(0)]), '[{}]');
});
