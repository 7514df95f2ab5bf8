// The live log's model: what the build page appends, event by event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogLines, compareStreamIds, stageNameOf } from './api/LogLines.js';
import { parseBuildEvent } from '@buildyard/scheduler';
import { buildTimes, stageSpans } from './api/DashboardState.js';
import type { ProgressView } from './api/types.js';

const amd = { digest: 'sha256:aaa', name: '[client 2/2] RUN build client', platform: 'linux/amd64', stage: 'client' };
const arm = { digest: 'sha256:bbb', name: '[client 2/2] RUN build client', platform: 'linux/arm64', stage: 'client' };

/** A build's events as the SSE endpoint sends them, with increasing stream ids. */
function events(): ProgressView[] {
  const e: Array<Omit<ProgressView, 'id' | 'timestampMs'>> = [
    { type: 'build.accepted' },
    { type: 'vertex.started', ...amd },
    { type: 'vertex.started', ...arm },
    { type: 'vertex.log', digest: amd.digest, text: 'compiling on amd' },
    { type: 'vertex.log', digest: arm.digest, text: 'compiling on a' },
    { type: 'vertex.log', digest: arm.digest, text: 'rm\nlinked arm\n' },
    { type: 'vertex.log', digest: amd.digest, text: '\nlinked amd\nbuilt client (amd) no newline' },
    { type: 'vertex.finished', ...amd },
    { type: 'vertex.log', digest: arm.digest, text: 'built client (arm) no newline' },
    { type: 'build.result', text: 'pushed x; digest sha256:ddd' },
  ];
  return e.map((x, i) => ({ ...x, id: `1700000000000-${i}`, timestampMs: 1700000000000 }));
}

const feed = (model: LogLines, list: ProgressView[]) => list.flatMap((e) => model.push(e)).join('');

test('stream ids compare by time, then sequence, as numbers', () => {
  assert.equal(compareStreamIds('9-0', '10-0'), -1);
  assert.equal(compareStreamIds('10-2', '10-10'), -1);
  assert.equal(compareStreamIds('10-2', '10-2'), 0);
  assert.equal(compareStreamIds('11-0', '10-99'), 1);
});

test('each platform\'s output shows a whole line at a time, labelled, even when chunks interleave mid-line', () => {
  const model = new LogLines();
  const text = feed(model, events()) + model.end().join('');
  assert.equal(text, [
    '#[client 2/2] RUN build client started',
    '#[client 2/2] RUN build client started',
    '[linux/arm64 client] compiling on arm',
    '[linux/arm64 client] linked arm',
    '[linux/amd64 client] compiling on amd',
    '[linux/amd64 client] linked amd',
    '[linux/amd64 client] built client (amd) no newline',
    '#[client 2/2] RUN build client done',
    'pushed x; digest sha256:ddd',
    '[linux/arm64 client] built client (arm) no newline',
    '',
  ].join('\n'));
});

test('a reconnect that replays events, or one out of order, changes nothing already shown', () => {
  const all = events();
  const once = new LogLines();
  const expected = feed(once, all);
  const replayed = new LogLines();
  // The EventSource reconnects after event 5 and the server starts again from the first event;
  // a stray older event arrives late too.
  const text = feed(replayed, [...all.slice(0, 6), ...all, all[2]]);
  assert.equal(text, expected);
  assert.equal(replayed.lastId, all.at(-1)!.id);
});

test('past its line limit the view stops with one notice instead of growing without bound', () => {
  const model = new LogLines(3);
  const log = (i: number, text: string): ProgressView => ({ id: `5-${i}`, type: 'vertex.log', timestampMs: 5, digest: amd.digest, text });
  const lines = [...model.push(log(1, 'a\nb\n')), ...model.push(log(2, 'c\nd\ne\n')), ...model.push(log(3, 'f\n'))];
  assert.equal(lines.length, 4);
  assert.deepEqual(lines.slice(0, 3), ['a\n', 'b\n', 'c\n']);
  assert.match(lines[3], /stops after 3 lines/);
});

test('log lines are labelled with the platform and the Dockerfile stage named in the step, else the stage id', () => {
  assert.equal(stageNameOf('[build 2/4] RUN make'), 'build');
  assert.equal(stageNameOf('[ 2/12] RUN make'), undefined);
  const model = new LogLines();
  const unnamed = { digest: 'sha256:ccc', name: '[1/1] RUN true', platform: 'linux/arm64', stage: 'linux/arm64#0' };
  const lines = [
    { type: 'vertex.started', ...amd }, { type: 'vertex.log', digest: amd.digest, text: 'x\n' },
    { type: 'vertex.started', ...unnamed, stage: 'linux/arm64#0' }, { type: 'vertex.log', digest: unnamed.digest, text: 'y\n' },
  ].flatMap((e, i) => model.push({ ...e, id: `1-${i}`, timestampMs: 1 } as ProgressView));
  assert.deepEqual(lines.filter((l) => !l.startsWith('#')), ['[linux/amd64 client] x\n', '[linux/arm64 linux/arm64#0] y\n']);
});

test('run time counts overlapping stage runs once; queue time is the rest up to the last stage end', () => {
  // submitted at 0, stage a ran 10..20, b 15..30, c 50..60: ran 30, waited 30 before and between
  assert.deepEqual(buildTimes(0, [[10, 20], [15, 30], [50, 60]], 100), { queueMs: 30, runMs: 30 });
  assert.deepEqual(buildTimes(0, [[76_000, undefined]], 76_200), { queueMs: 76_000, runMs: 200 });
  assert.deepEqual(buildTimes(0, [], 5), { queueMs: null, runMs: null });
  const spans = stageSpans(([
    ['10-0', ['type', 'stage-queued', 'platform', 'p', 'stage', 's']],
    ['12-0', ['type', 'stage-started', 'platform', 'p', 'stage', 's']],
    ['20-0', ['type', 'stage-completed', 'platform', 'p', 'stage', 's']],
    ['21-0', ['type', 'stage-started', 'platform', 'p', 'stage', 't']],
  ] as Array<[string, string[]]>).map(([id, flat]) => parseBuildEvent('b', id, flat)));
  assert.deepEqual(spans, [[12, 20], [21, undefined]]);
});
