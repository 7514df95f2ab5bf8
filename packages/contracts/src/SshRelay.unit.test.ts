import { test } from 'node:test';
import assert from 'node:assert/strict';
import { missingSshAgent } from './SshRelay.js';

test('an ssh mount\'s missing agent is reported in BuildKit\'s words', () => {
  // No agent forwarded at all (buildkitd: the session has no SSH service): the mount's id as written.
  assert.equal(missingSshAgent('', undefined), 'no SSH key "" forwarded from the client');
  assert.equal(missingSshAgent('deploy', undefined), 'no SSH key "deploy" forwarded from the client');
  // Agents forwarded, not this one (the client's CheckAgent answer); no id means "default".
  assert.equal(missingSshAgent('deploy', ['default']), 'unset ssh forward key deploy');
  assert.equal(missingSshAgent('', []), 'unset ssh forward key default');
  assert.equal(missingSshAgent('', ['default']), undefined);
  assert.equal(missingSshAgent('deploy', ['default', 'deploy']), undefined);
});
