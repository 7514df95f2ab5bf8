import { test } from 'node:test';
import assert from 'node:assert/strict';
import { editDistance, suggest } from './suggest.js';

const FLAGS = ['--file', '--tag', '--platform', '--build-arg', '--push', '--pull', '--progress', '--secret', '--output'];

test('typos get the flag they meant; unrelated flags get no hint', () => {
  assert.equal(editDistance('platfrom', 'platform'), 1, 'a swap is one edit');
  assert.deepEqual(suggest('--platfrom', FLAGS), ['--platform']);
  assert.deepEqual(suggest('--bulid-arg', FLAGS), ['--build-arg']);
  assert.deepEqual(suggest('--tga', FLAGS), ['--tag']);
  assert.deepEqual(suggest('--pus', FLAGS), ['--push']);
  assert.deepEqual(suggest('--ssh', FLAGS), [], '--ssh is not a typo of --push');
  assert.deepEqual(suggest('--iidfile', FLAGS), [], '--iidfile is not a typo of --file');
  assert.deepEqual(suggest('--sbom', FLAGS), []);
});
