import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { errdefs } from '@buildyard/proto';
import { instructionEndLine, sourceServiceError } from './sourceError.js';

test('an instruction continued with backslashes ends on its last continued line', () => {
  const df = Buffer.from('FROM a\nRUN one && \\\n  two \\  \n  three\nRUN four\n');
  assert.equal(instructionEndLine(df, 2), 4);
  assert.equal(instructionEndLine(df, 5), 5);
  assert.equal(instructionEndLine(df, 1), 1);
});

test('a RUN with heredocs ends on its last terminator line; a line that starts no instruction is itself', () => {
  const df = Buffer.from('FROM a\nRUN <<EOF cat - <<-TWO\necho one\nexit 5\nEOF\n\tsecond\n\tTWO\nRUN after\n');
  assert.equal(instructionEndLine(df, 2), 7);
  assert.equal(instructionEndLine(df, 8), 8);
  assert.equal(instructionEndLine(df, 3), 3);
  assert.equal(instructionEndLine(Buffer.from('FROM a\nRUN <<EOF\nno terminator\n'), 2), 2);
});

test('the Solve error carries errdefs.Source in grpc-status-details-bin as buildkitd sends it', () => {
  const data = Buffer.from('FROM a\nRUN exit 3\n');
  const err = sourceServiceError(status.UNKNOWN, 'process failed', { filename: 'Dockerfile', data, startLine: 2, endLine: 2 });
  assert.equal(err.code, status.UNKNOWN);
  const [bin] = err.metadata.get('grpc-status-details-bin');
  const st = errdefs.StatusDetails.decode(bin as Buffer);
  assert.equal(st.message, 'process failed');
  assert.equal(st.details.length, 1);
  assert.equal(st.details[0].typeUrl, 'errdefs.Source');
  const src = errdefs.Source.decode(st.details[0].value);
  assert.equal(src.info?.filename, 'Dockerfile');
  assert.equal(Buffer.from(src.info!.data).toString(), data.toString());
  assert.deepEqual(src.ranges.map((r) => [r.start?.line, r.end?.line]), [[2, 2]]);
});
