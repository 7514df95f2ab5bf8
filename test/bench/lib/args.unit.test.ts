import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBenchArgs } from './args.js';
import { median, percentile } from './stats.js';

const known = ['build', 'compression', 'scheduler'];

test('--only selects benchmarks, in either spelling, and --quick is a flag', () => {
  assert.deepEqual(parseBenchArgs(['--only=compression,scheduler', '--quick'], known), { only: ['compression', 'scheduler'], quick: true, out: undefined });
  assert.deepEqual(parseBenchArgs(['--only', 'build', '--out', 'x.json'], known), { only: ['build'], quick: false, out: 'x.json' });
  assert.deepEqual(parseBenchArgs([], known), { only: undefined, quick: false, out: undefined });
});

test('an unknown benchmark or option is refused with the list of choices', () => {
  assert.throws(() => parseBenchArgs(['--only=compresion'], known), /unknown benchmark compresion in --only; choose from build, compression, scheduler/);
  assert.throws(() => parseBenchArgs(['--fast'], known), /unknown option --fast/);
  assert.throws(() => parseBenchArgs(['--only'], known), /--only needs a value/);
});

test('median and nearest-rank percentiles', () => {
  assert.equal(median([5, 1, 3]), 3);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(hundred, 50), 50);
  assert.equal(percentile(hundred, 99), 99);
  assert.equal(percentile([7], 99), 7);
  assert.throws(() => median([]), /no samples/);
});
