import { test } from 'node:test';
import assert from 'node:assert/strict';
import { briefMessage } from './briefMessage.js';

test('briefMessage keeps short text and cuts the middle of long text', () => {
  assert.equal(briefMessage('exit code: 1'), 'exit code: 1');
  const long = `process "/bin/sh -c ${'x'.repeat(1 << 20)}" did not complete successfully: exit code: 1`;
  const cut = briefMessage(long);
  assert.ok(cut.length < 700, `${cut.length}`);
  assert.match(cut, /^process "\/bin\/sh -c x+… \(\d+ chars left out\) …x+" did not complete successfully: exit code: 1$/);
});
