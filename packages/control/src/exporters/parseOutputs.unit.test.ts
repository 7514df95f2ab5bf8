import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOutputs } from './index.js';

const output = (type: string, attrs: Record<string, string>) => ({ type, attrs });

test('rewrite-timestamp takes Go bool words on image outputs; the file outputs ignore it; anything else is refused naming the output', () => {
  const parsed = parseOutputs([
    output('image', { 'rewrite-timestamp': 'true' }), output('registry', { name: 'r.example/a:1', 'rewrite-timestamp': '1' }),
    output('oci', { 'rewrite-timestamp': 'False' }), output('docker', {}), output('local', { 'rewrite-timestamp': 'true' }),
  ]);
  assert.deepEqual(parsed.map((o) => o.rewriteTimestamp), [true, true, false, false, false]);
  assert.throws(() => parseOutputs([output('image', {}), output('image', { 'rewrite-timestamp': 'yes' })]),
    /^Error: output 2 \(type=image\): non-bool value specified for rewrite-timestamp: "yes": use true or false$/);
});

test('source-date-epoch (BuildKit\'s exporter attr) takes whole seconds; empty is none; anything else is refused naming the output', () => {
  const parsed = parseOutputs([output('local', { 'source-date-epoch': '1700000000' }), output('tar', { 'source-date-epoch': '0' }), output('local', { 'source-date-epoch': '' }), output('tar', {})]);
  assert.deepEqual(parsed.map((o) => o.sourceDateEpoch), [1_700_000_000, 0, undefined, undefined]);
  assert.throws(() => parseOutputs([output('local', { 'source-date-epoch': '1.5' })]), /^Error: output 1 \(type=local\): invalid source-date-epoch "1.5": use whole seconds since 1970$/);
});
