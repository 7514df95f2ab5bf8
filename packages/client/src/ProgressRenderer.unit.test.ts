import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import type { SolveEvent, VertexStatus } from '@buildyard/proto';
import { PlainRenderer, formatSummary, resolveProgressMode } from './ProgressRenderer.js';
import { RawJsonRenderer } from './RawJsonRenderer.js';
import { TtyRenderer, renderTtyFrame } from './TtyRenderer.js';
import { BuildProgress } from './BuildProgress.js';

const T0 = 1_700_000_000_000;

function vertex(p: Partial<VertexStatus> & { digest: string; name: string }): VertexStatus {
  return { platform: '', stage: '', step: 0, steps: 0, workerId: '', emulated: false, cached: false, startedMs: 0, completedMs: 0, error: '', totalBytes: 0, currentBytes: 0, ...p };
}
const ev = (dt: number, e: Omit<SolveEvent, 'timestampMs'>): SolveEvent => ({ timestampMs: T0 + dt, ...e });
const log = (dt: number, digest: string, text: string): SolveEvent => ev(dt, { log: { digest, stream: 1, data: Buffer.from(text), truncated: false } });

const FROM = vertex({ digest: 'sha256:from', name: '[build 1/3] FROM docker.io/library/busybox:latest', platform: 'linux/arm64', stage: 'build', step: 1, steps: 3 });
const MAKE = vertex({ digest: 'sha256:make', name: '[build 2/3] RUN make', platform: 'linux/arm64', stage: 'build', step: 2, steps: 3, workerId: 'w-amd64-1', emulated: true });
const TEST = vertex({ digest: 'sha256:test', name: '[build 3/3] RUN ./test', platform: 'linux/arm64', stage: 'build', step: 3, steps: 3, workerId: 'w-arm64-1' });

/** A recorded successful build: one cached step, one emulated step with logs, one native step. */
export const SUCCESS: SolveEvent[] = [
  ev(0, { accepted: { buildId: 'b-42', platforms: ['linux/arm64'] } }),
  ev(10, { vertex: { ...FROM, cached: true, startedMs: T0 + 10, completedMs: T0 + 10 } }),
  ev(20, { vertex: { ...MAKE, startedMs: T0 + 20 } }),
  log(140, 'sha256:make', 'cc -c main.c\ncc -o app'),
  log(260, 'sha256:make', ' main.o\n'),
  ev(1220, { vertex: { ...MAKE, startedMs: T0 + 20, completedMs: T0 + 1220 } }),
  ev(1230, { vertex: { ...TEST, startedMs: T0 + 1230 } }),
  log(1300, 'sha256:test', 'ok 1\n'),
  ev(1530, { vertex: { ...TEST, startedMs: T0 + 1230, completedMs: T0 + 1530 } }),
  ev(1600, { result: { buildId: 'b-42', digest: 'sha256:idx', images: [{ platform: 'linux/arm64', manifestDigest: 'sha256:m1', configDigest: 'sha256:c1' }], pushed: ['127.0.0.1:5000/app:1@sha256:idx'], metadata: {}, verticesTotal: 3, verticesCached: 1, durationMs: 1600 } }),
];

test('plain renderer prints buildx plain lines', () => {
  const lines: string[] = [];
  const r = new PlainRenderer((l) => lines.push(l));
  for (const e of SUCCESS) r.event(e);
  r.end();
  assert.deepEqual(lines, [
    '#1 [build 1/3] FROM docker.io/library/busybox:latest (linux/arm64)',
    '#1 CACHED',
    '',
    '#2 [build 2/3] RUN make (linux/arm64 on w-amd64-1 (emulated))',
    '#2 0.120 cc -c main.c',
    '#2 0.240 cc -o app main.o',
    '#2 DONE 1.2s',
    '',
    '#3 [build 3/3] RUN ./test (linux/arm64 on w-arm64-1)',
    '#3 0.070 ok 1',
    '#3 DONE 0.3s',
  ]);
  assert.deepEqual(formatSummary(r.progress), [
    'Build b-42 finished in 1.6s, cache hits 1/3',
    ' linux/arm64: sha256:m1',
    'pushed 127.0.0.1:5000/app:1@sha256:idx',
    'digest: sha256:idx',
  ]);
});

test('plain renderer re-announces a step when output interleaves, and prints errors', () => {
  const lines: string[] = [];
  const r = new PlainRenderer((l) => lines.push(l));
  const A = vertex({ digest: 'a', name: '[a 1/1] RUN one' });
  const B = vertex({ digest: 'b', name: '[b 1/1] RUN two' });
  for (const e of [
    ev(0, { vertex: { ...A, startedMs: T0 } }),
    ev(0, { vertex: { ...B, startedMs: T0 } }),
    log(500, 'a', 'from a\n'),
    log(600, 'b', 'partial'),
    ev(700, { vertex: { ...B, startedMs: T0, completedMs: T0 + 700, error: 'exit code: 2' } }),
    ev(0, { warning: { message: 'FROM uses a mutable tag', file: 'Dockerfile', line: 1 } }),
  ]) r.event(e);
  assert.deepEqual(lines, [
    '#1 [a 1/1] RUN one', '', '#2 [b 1/1] RUN two', '', '#1 [a 1/1] RUN one', '#1 0.500 from a',
    '', '#2 [b 1/1] RUN two', '#2 0.700 partial', '#2 ERROR: exit code: 2', '', 'WARNING: FROM uses a mutable tag (Dockerfile:1)',
  ]);
});

test('tty frames: running step with timer, placement, last log lines; final frame', () => {
  const p = new BuildProgress();
  for (const e of SUCCESS.slice(0, 5)) p.apply(e);
  const frame = renderTtyFrame(p, { now: T0 + 1000, columns: 80, rows: 30 });
  assert.deepEqual(frame.split('\n'), [
    '[+] Building 1.0s (1/2)',
    ` => CACHED [build 1/3] FROM docker.io/library/busybox:latest linux/arm64${' '.repeat(3)} 0.0s`,
    ` => [build 2/3] RUN make linux/arm64 on w-amd64-1 (emulated)${' '.repeat(15)} 1.0s`,
    ' => => # cc -c main.c',
    ' => => # cc -o app main.o',
  ]);
  for (const l of frame.split('\n').slice(1, 3)) assert.equal(l.length, 80);
  for (const e of SUCCESS.slice(5)) p.apply(e);
  const last = renderTtyFrame(p, { now: T0 + 5000, columns: 80, rows: 30, finished: true }).split('\n');
  assert.equal(last[0], '[+] Building 1.6s (3/3) FINISHED');
  assert.match(last[2], /^ => \[build 2\/3\] RUN make linux\/arm64 on w-amd64-1 \(emulated\) +1\.2s$/);
  assert.match(last[3], /^ => \[build 3\/3\] RUN \.\/test linux\/arm64 on w-arm64-1 +0\.3s$/);
  assert.equal(last.length, 4, 'finished steps hide their logs');
});

test('tty frames keep at most 6 log lines and fit the terminal height', () => {
  const p = new BuildProgress();
  const V = vertex({ digest: 'v', name: '[s 1/1] RUN loop' });
  p.apply(ev(0, { vertex: { ...V, startedMs: T0 } }));
  p.apply(log(10, 'v', Array.from({ length: 20 }, (_, i) => `line ${i}`).join('\n') + '\n'));
  const lines = renderTtyFrame(p, { now: T0 + 100, columns: 60, rows: 40 }).split('\n');
  assert.deepEqual(lines.slice(2), ['line 14', 'line 15', 'line 16', 'line 17', 'line 18', 'line 19'].map((l) => ` => => # ${l}`));
  for (let i = 0; i < 30; i++) p.apply(ev(0, { vertex: vertex({ digest: `d${i}`, name: `[x ${i}] RUN true`, startedMs: T0, completedMs: T0 + 1 }) }));
  const small = renderTtyFrame(p, { now: T0 + 100, columns: 60, rows: 12 }).split('\n');
  assert.ok(small.length <= 12, `frame has ${small.length} lines`);
  assert.ok(small.some((l) => l.includes('RUN loop')), 'the running step stays visible');
});

/** What a TtyRenderer writes for the SUCCESS events to a terminal of that size. */
function ttyOutput(columns: number, rows: number): string {
  const stream = Object.assign(new PassThrough(), { columns, rows, isTTY: true });
  let out = '';
  stream.on('data', (d: Buffer) => { out += d.toString(); });
  const r = new TtyRenderer({ stream, color: false, intervalMs: 10_000, now: () => T0 + 2000 });
  for (const e of SUCCESS) r.event(e);
  r.end();
  return out;
}

test('tty renderer writes frames through log-update to its stream', async () => {
  const out = ttyOutput(80, 24);
  assert.match(out, /\[\+\] Building 1\.6s \(3\/3\) FINISHED/);
  assert.match(out, /\x1b\[\d*[AK]/, 'frames are redrawn in place with ANSI erase codes');
});

test('a terminal reporting 0 columns and 0 rows still gets the view, at 80 columns', async () => {
  const out = ttyOutput(0, 0);
  assert.match(out, /\[\+\] Building 1\.6s \(3\/3\) FINISHED/);
  assert.match(out, /RUN make/);
});

test('rawjson prints BuildKit\'s SolveStatus JSON, one object per update, as buildctl --progress rawjson', () => {
  const lines: string[] = [];
  const r = new RawJsonRenderer((l) => lines.push(l));
  for (const e of SUCCESS) r.event(e);
  r.event(ev(1700, { file: { output: 0, path: 'a/b', mode: 0o644, data: Buffer.from('hello'), last: true, linkTarget: '', hardlinkTo: '', cache: false } }));
  r.end();
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  // Go's encoding of client.SolveStatus: field order, omitempty, RFC 3339 times without trailing zeros.
  assert.deepEqual(lines, [
    '{"vertexes":[{"digest":"sha256:from","name":"[build 1/3] FROM docker.io/library/busybox:latest","started":"2023-11-14T22:13:20.01Z","completed":"2023-11-14T22:13:20.01Z","cached":true}]}',
    '{"vertexes":[{"digest":"sha256:make","name":"[build 2/3] RUN make","started":"2023-11-14T22:13:20.02Z"}]}',
    `{"logs":[{"vertex":"sha256:make","stream":1,"data":"${b64('cc -c main.c\ncc -o app')}","timestamp":"2023-11-14T22:13:20.14Z"}]}`,
    `{"logs":[{"vertex":"sha256:make","stream":1,"data":"${b64(' main.o\n')}","timestamp":"2023-11-14T22:13:20.26Z"}]}`,
    '{"vertexes":[{"digest":"sha256:make","name":"[build 2/3] RUN make","started":"2023-11-14T22:13:20.02Z","completed":"2023-11-14T22:13:21.22Z"}]}',
    '{"vertexes":[{"digest":"sha256:test","name":"[build 3/3] RUN ./test","started":"2023-11-14T22:13:21.23Z"}]}',
    `{"logs":[{"vertex":"sha256:test","stream":1,"data":"${b64('ok 1\n')}","timestamp":"2023-11-14T22:13:21.3Z"}]}`,
    '{"vertexes":[{"digest":"sha256:test","name":"[build 3/3] RUN ./test","started":"2023-11-14T22:13:21.23Z","completed":"2023-11-14T22:13:21.53Z"}]}',
  ]);
});

test('rawjson: platform-named steps when several platforms build, errors, transfer statuses, warnings, Go\'s HTML-safe escaping', () => {
  const lines: string[] = [];
  const r = new RawJsonRenderer((l) => lines.push(l));
  const RUN = vertex({ digest: 'sha256:run', name: '[2/2] RUN echo a > b && false', platform: 'linux/arm64', stage: '0', step: 2, steps: 2 });
  r.event(ev(0, { accepted: { buildId: 'b-1', platforms: ['linux/amd64', 'linux/arm64'] } }));
  r.event(ev(1, { warning: { message: 'FROM --platform flag should not use constant value', file: 'Dockerfile', line: 1 } }));
  r.event(ev(2, { vertex: { ...FROM, startedMs: T0 + 2, currentBytes: 512, totalBytes: 1024 } }));
  r.event(ev(3, { vertex: { ...RUN, startedMs: T0 + 3 } }));
  r.event(ev(4, { log: { digest: 'sha256:run', stream: 2, data: Buffer.from('oops\n'), truncated: false } }));
  r.event(ev(5, { vertex: { ...RUN, startedMs: T0 + 3, completedMs: T0 + 5, error: 'process "/bin/sh -c echo a > b && false" did not complete successfully: exit code: 1' } }));
  r.event(ev(6, { error: { message: 'exit code: 1', vertex: 'sha256:run', file: '', line: 0, code: '' } }));
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(lines, [
    `{"warnings":[{"level":1,"short":"${b64('FROM --platform flag should not use constant value')}","sourceInfo":{"filename":"Dockerfile"},"range":[{"start":{"line":1},"end":{"line":1}}]}]}`,
    '{"statuses":[{"id":"sha256:from-bytes","vertex":"sha256:from","name":"transferring","total":1024,"current":512,"timestamp":"2023-11-14T22:13:20.002Z","started":"2023-11-14T22:13:20.002Z"}]}',
    '{"vertexes":[{"digest":"sha256:run","name":"[linux/arm64 2/2] RUN echo a \\u003e b \\u0026\\u0026 false","started":"2023-11-14T22:13:20.003Z"}]}',
    `{"logs":[{"vertex":"sha256:run","stream":2,"data":"${b64('oops\n')}","timestamp":"2023-11-14T22:13:20.004Z"}]}`,
    '{"vertexes":[{"digest":"sha256:run","name":"[linux/arm64 2/2] RUN echo a \\u003e b \\u0026\\u0026 false","started":"2023-11-14T22:13:20.003Z","completed":"2023-11-14T22:13:20.005Z","error":"process \\"/bin/sh -c echo a \\u003e b \\u0026\\u0026 false\\" did not complete successfully: exit code: 1"}]}',
  ]);
  // Each line is JSON a Go or JS reader decodes to the same strings.
  assert.equal(JSON.parse(lines[2]).vertexes[0].name, '[linux/arm64 2/2] RUN echo a > b && false');
});

test('auto is tty on a terminal, plain otherwise', () => {
  assert.equal(resolveProgressMode('auto', true), 'tty');
  assert.equal(resolveProgressMode('auto', false), 'plain');
  assert.equal(resolveProgressMode('rawjson', true), 'rawjson');
});
