import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sshIds } from './sessionSsh.js';

test('the agent ids a Dockerfile mounts are the ones asked of the client (CheckAgent), "default" for none', () => {
  const ids = sshIds([
    'FROM busybox',
    'RUN --mount=type=ssh ssh-add -l',
    'RUN --mount=type=ssh,id=deploy,required=true --mount=type=secret,id=tok true',
    'RUN --mount=type=ssh,id=deploy,target=/s true',
    'RUN --mount=type=cache,target=/c true',
    '',
  ].join('\n'), 'Dockerfile');
  assert.deepEqual(ids, ['default', 'deploy']);
});
