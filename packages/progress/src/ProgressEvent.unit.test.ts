import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SolveEvent } from '@buildyard/proto';
import { encodeEvent, fromSolveEvent, toSolveEvent, type ProgressEvent, type VertexRef } from './ProgressEvent.js';
import { decodeEvent } from './storedEvent.js';
import { incompleteUtf8Tail, utf8SafeCut } from './utf8.js';

const v: VertexRef = { digest: 'sha256:' + 'a'.repeat(64), name: '[build 2/4] RUN make', platform: 'linux/arm64', stage: 'build', step: 2, steps: 4, workerId: 'w1', emulated: true };

test('toSolveEvent maps each event type onto SolveEvent', () => {
  const started = toSolveEvent({ type: 'vertex.started', vertex: v, startedMs: 10, timestampMs: 11 });
  assert.equal(started.timestampMs, 11);
  assert.deepEqual(started.vertex, { ...v, cached: false, startedMs: 10, completedMs: 0, error: '', totalBytes: 0, currentBytes: 0 });
  assert.equal(toSolveEvent({ type: 'vertex.cached', vertex: v, timestampMs: 5 }).vertex?.cached, true);
  const fin = toSolveEvent({ type: 'vertex.finished', vertex: v, startedMs: 10, completedMs: 30, durationMs: 20, timestampMs: 30 });
  assert.equal(fin.vertex?.completedMs, 30);
  assert.equal(toSolveEvent({ type: 'vertex.error', vertex: v, startedMs: 1, completedMs: 2, error: 'exit code 1', timestampMs: 2 }).vertex?.error, 'exit code 1');
  const log = toSolveEvent({ type: 'vertex.log', digest: v.digest, stream: 2, data: Buffer.from('x'), truncated: true, timestampMs: 1 });
  assert.deepEqual(log.log, { digest: v.digest, stream: 2, data: Buffer.from('x'), truncated: true });
  assert.deepEqual(toSolveEvent({ type: 'build.accepted', buildId: 'b', platforms: ['linux/amd64'], timestampMs: 1 }).accepted, { buildId: 'b', platforms: ['linux/amd64'] });
  assert.deepEqual(toSolveEvent({ type: 'build.error', message: 'bad', line: 3, timestampMs: 1 }).error, { message: 'bad', vertex: '', file: '', line: 3, code: '' });
  assert.equal(toSolveEvent({ type: 'build.warning', message: 'w', timestampMs: 1 }).warning?.message, 'w');
  const res = toSolveEvent({ type: 'build.result', buildId: 'b', digest: 'sha256:' + 'b'.repeat(64), images: [{ platform: 'linux/amd64', manifestDigest: 'm', configDigest: 'c' }], pushed: [], metadata: { k: 'v' }, verticesTotal: 3, verticesCached: 1, durationMs: 9, timestampMs: 1 });
  assert.equal(res.result?.verticesCached, 1);
  // Every mapped event survives the wire encoding.
  assert.deepEqual(SolveEvent.decode(SolveEvent.encode(res).finish()).result?.metadata, { k: 'v' });
  assert.deepEqual(SolveEvent.decode(SolveEvent.encode(log).finish()).log?.data, Buffer.from('x'));
});

test('encodeEvent/decodeEvent round-trip binary log data', () => {
  const e: ProgressEvent = { type: 'vertex.log', digest: 'd', stream: 1, data: Buffer.from([0, 255, 0xe2, 0x82]), truncated: false, timestampMs: 7 };
  assert.deepEqual(decodeEvent(encodeEvent(e)), e);
  const s: ProgressEvent = { type: 'vertex.started', vertex: v, startedMs: 3, timestampMs: 3 };
  assert.deepEqual(decodeEvent(encodeEvent(s)), s);
});

test('utf8SafeCut never cuts inside a character', () => {
  const b = Buffer.from('a€b'); // 61 e2 82 ac 62
  assert.equal(utf8SafeCut(b, 1), 1);
  assert.equal(utf8SafeCut(b, 2), 1);
  assert.equal(utf8SafeCut(b, 3), 1);
  assert.equal(utf8SafeCut(b, 4), 4);
  assert.equal(utf8SafeCut(b, 10), 5);
  const emoji = Buffer.from('😀'); // 4 bytes
  assert.equal(utf8SafeCut(emoji, 3), 0);
});

test('incompleteUtf8Tail finds a dangling partial character', () => {
  assert.equal(incompleteUtf8Tail(Buffer.from('abc')), 0);
  assert.equal(incompleteUtf8Tail(Buffer.from('a€')), 0);
  assert.equal(incompleteUtf8Tail(Buffer.from('a€').subarray(0, 3)), 2);
  assert.equal(incompleteUtf8Tail(Buffer.from('a€').subarray(0, 2)), 1);
  assert.equal(incompleteUtf8Tail(Buffer.from('😀').subarray(0, 3)), 3);
});

test('fromSolveEvent gives back the event a client received (toSolveEvent\'s inverse)', () => {
  const events: ProgressEvent[] = [
    { type: 'build.accepted', buildId: 'b1', platforms: ['linux/amd64', 'linux/arm64'], timestampMs: 1 },
    { type: 'vertex.started', vertex: v, startedMs: 10, timestampMs: 11 },
    { type: 'vertex.cached', vertex: v, timestampMs: 12 },
    { type: 'vertex.progress', vertex: v, startedMs: 10, currentBytes: 5, totalBytes: 9, timestampMs: 13 },
    { type: 'vertex.log', digest: v.digest, stream: 2, data: Buffer.from('x\n'), truncated: true, timestampMs: 14 },
    { type: 'vertex.finished', vertex: v, startedMs: 10, completedMs: 30, durationMs: 20, timestampMs: 30 },
    { type: 'vertex.error', vertex: v, startedMs: 10, completedMs: 31, error: 'exit code: 1', timestampMs: 31 },
    { type: 'build.result', buildId: 'b1', digest: 'sha256:d', images: [{ platform: 'linux/amd64', manifestDigest: 'sha256:m', configDigest: 'sha256:c' }], pushed: ['r/a:1'], metadata: { k: 'v' }, verticesTotal: 3, verticesCached: 1, durationMs: 40, timestampMs: 40 },
    { type: 'build.error', message: 'boom', vertex: v.digest, file: 'Dockerfile', line: 3, code: 'x', timestampMs: 41 },
    { type: 'build.warning', message: 'careful', file: 'Dockerfile', line: 2, timestampMs: 42 },
  ];
  for (const e of events) assert.deepEqual(fromSolveEvent(toSolveEvent(e)), e, e.type);
  assert.equal(fromSolveEvent(SolveEvent.fromPartial({ timestampMs: 1, file: { path: 'a', data: Buffer.from('x') } })), undefined);
});
