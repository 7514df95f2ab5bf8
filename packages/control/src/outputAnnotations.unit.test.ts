import { test } from 'node:test';
import assert from 'node:assert/strict';
import { outputAnnotations } from './outputAnnotations.js';

test('annotation attributes of the outputs: index, every manifest, one platform\'s manifest; other attributes ignored', () => {
  const a = outputAnnotations([
    { type: 'image', attrs: { name: 'r/a:1', 'annotation.k': 'v', 'annotation-index.i': '1', 'annotation-manifest[linux/arm64].m': '2' } },
    { type: 'oci', attrs: { dest: 'x', 'annotation-manifest.k2': 'w' } },
  ]);
  assert.deepEqual(a.index, { i: '1' });
  assert.deepEqual(a.manifest('linux/amd64'), { k: 'v', k2: 'w' });
  assert.deepEqual(a.manifest('linux/arm64'), { k: 'v', k2: 'w', m: '2' });
  assert.throws(() => outputAnnotations([{ type: 'image', attrs: { 'annotation-index-descriptor.x': 'y' } }]), /use annotation\.KEY, annotation-index\.KEY/);
  assert.throws(() => outputAnnotations([{ type: 'image', attrs: { 'annotation-index[linux/amd64].x': 'y' } }]), /index annotations take no platform/);
});
