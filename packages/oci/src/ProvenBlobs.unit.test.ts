import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProvenBlobs } from './ProvenBlobs.js';

const digest = `sha256:${'a'.repeat(64)}`;

test('a proof holds for its tenant, registry, repository and digest only', () => {
  const proofs = new ProvenBlobs();
  const a = proofs.forTenant('a');
  a.add('reg:5000', 'x/app', digest);
  assert.equal(a.has('reg:5000', 'x/app', digest), true);
  assert.equal(proofs.forTenant('b').has('reg:5000', 'x/app', digest), false);
  assert.equal(a.has('reg:5000', 'x/other', digest), false);
  assert.equal(a.has('other:5000', 'x/app', digest), false);
  assert.equal(a.has('reg:5000', 'x/app', `sha256:${'b'.repeat(64)}`), false);
  // Names that would run together in a joined key stay apart.
  proofs.forTenant('t').add('r', 'a/b', digest);
  assert.equal(proofs.forTenant('t').has('r/a', 'b', digest), false);
});

test('a proof expires, and the oldest go first past the bound', () => {
  let now = 1_000_000;
  const proofs = new ProvenBlobs(60_000, 2, () => now);
  const a = proofs.forTenant('a');
  a.add('r', 'one', digest);
  now += 59_999;
  assert.equal(a.has('r', 'one', digest), true);
  now += 1;
  assert.equal(a.has('r', 'one', digest), false, 'expired');
  a.add('r', 'one', digest);
  a.add('r', 'two', digest);
  a.add('r', 'one', digest); // proven again: now the newest
  a.add('r', 'three', digest);
  assert.equal(a.has('r', 'two', digest), false, 'the oldest went');
  assert.equal(a.has('r', 'one', digest), true);
  assert.equal(a.has('r', 'three', digest), true);
});
