import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BuildProgress } from './BuildProgress.js';
import { dockerfileExcerpt } from '@buildyard/dockerfile';
import { formatBuildError } from './formatBuildError.js';

const DOCKERFILE = 'FROM busybox\nWORKDIR /src\nCOPY . .\nRUN make\nRUN false\nCMD ["/app"]\n';
/** DOCKERFILE's excerpt around line 5, as buildx prints it. */
const LINE_5_EXCERPT = [
  'Dockerfile:5',
  '--------------------',
  '   3 |     COPY . .',
  '   4 |     RUN make',
  '   5 | >>> RUN false',
  '   6 |     CMD ["/app"]',
  '--------------------',
];

test('excerpt marks the offending line with >>> and shows two lines around it', () => {
  assert.deepEqual(dockerfileExcerpt(DOCKERFILE, 'Dockerfile', 5), LINE_5_EXCERPT);
  assert.deepEqual(dockerfileExcerpt(DOCKERFILE, 'x.Dockerfile', 1, 2, 0), ['x.Dockerfile:1-2', '--------------------', '   1 | >>> FROM busybox', '   2 | >>> WORKDIR /src', '--------------------']);
  assert.deepEqual(dockerfileExcerpt(DOCKERFILE, 'Dockerfile', 40), []);
});

test('a failed build shows the step log box, the ERROR line and the Dockerfile excerpt', () => {
  const p = new BuildProgress();
  p.apply({ timestampMs: 1000, vertex: { digest: 'v5', name: '[build 5/5] RUN false', platform: 'linux/amd64', stage: 'build', step: 5, steps: 5, workerId: 'w1', emulated: false, cached: false, startedMs: 1000, completedMs: 0, error: '', totalBytes: 0, currentBytes: 0 } });
  p.apply({ timestampMs: 1250, log: { digest: 'v5', stream: 2, data: Buffer.from('boom\n'), truncated: false } });
  const lines = formatBuildError({
    error: { message: 'process "/bin/sh -c false" did not complete successfully: exit code: 1', vertex: 'v5', file: 'Dockerfile', line: 5, code: 'exec' },
    progress: p, dockerfile: DOCKERFILE,
  });
  assert.deepEqual(lines, [
    '------',
    ' > [build 5/5] RUN false:',
    '0.250 boom',
    '------',
    'ERROR: failed to solve: process "/bin/sh -c false" did not complete successfully: exit code: 1',
    ...LINE_5_EXCERPT,
  ]);
  // A parse error without a vertex: no log box, excerpt from the client's Dockerfile.
  const parse = formatBuildError({ error: { message: 'dockerfile parse error on line 2: unknown instruction: WORKDIRR', vertex: '', file: '', line: 2, code: 'dockerfile.parse' }, dockerfile: DOCKERFILE, dockerfileName: 'app.Dockerfile' });
  assert.equal(parse[0], 'ERROR: failed to solve: dockerfile parse error on line 2: unknown instruction: WORKDIRR');
  assert.equal(parse[1], 'app.Dockerfile:2');
  assert.equal(parse[4], '   2 | >>> WORKDIR /src');
});
