import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startRedis, until, type RedisService } from '@buildyard/testkit';
import { ProgressWriter, TRUNCATION_MARKER } from './ProgressWriter.js';
import { readProgress } from './readProgress.js';
import { progressStreamKey } from './progressStream.js';
import type { StreamedProgressEvent, VertexRef } from './ProgressEvent.js';

let service: RedisService;
let redis: Redis;

before(async () => {
  service = await startRedis();
  redis = new Redis(service.url, { maxRetriesPerRequest: 3 });
});
after(async () => {
  redis?.disconnect();
  await service?.stop();
});

const vertex = (n: number): VertexRef => ({
  digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, name: `[build ${n}/3] RUN step ${n}`, platform: 'linux/arm64',
  stage: 'build', step: n, steps: 3, workerId: 'worker-a', emulated: true,
});

/** Connections blocked in XREAD right now: a reader waiting for the stream to grow. */
async function blockedReaders(): Promise<number> {
  const clients = (await redis.client('LIST')) as string;
  return clients.split('\n').filter((c) => /\bcmd=xread\b/.test(c) && /\bflags=\w*b/.test(c)).length;
}

async function collect(it: AsyncIterable<StreamedProgressEvent>): Promise<StreamedProgressEvent[]> {
  const out: StreamedProgressEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

test('events round-trip in order and the end marker ends the reader', async () => {
  const w = new ProgressWriter(redis, 'b-roundtrip');
  await w.emit({ type: 'build.accepted', buildId: 'b-roundtrip', platforms: ['linux/amd64', 'linux/arm64'] });
  await w.cached(vertex(1));
  await w.started(vertex(2), 1000);
  w.log(vertex(2).digest, 'hello ');
  w.log(vertex(2).digest, 'world\n');
  w.log(vertex(2).digest, 'oops\n', 2);
  await w.finished(vertex(2), 1000, 1500);
  await w.emit({ type: 'build.result', buildId: 'b-roundtrip', digest: 'sha256:' + 'f'.repeat(64), images: [], pushed: [], metadata: { a: 'b' }, verticesTotal: 2, verticesCached: 1, durationMs: 600 });
  await w.close();
  const events = await collect(readProgress(redis, 'b-roundtrip', { fromStart: true }));
  assert.deepEqual(events.map((e) => e.type), ['build.accepted', 'vertex.cached', 'vertex.started', 'vertex.log', 'vertex.log', 'vertex.finished', 'build.result']);
  const logs = events.filter((e) => e.type === 'vertex.log');
  assert.deepEqual(logs.map((e) => [e.stream, e.data.toString()]), [[1, 'hello world\n'], [2, 'oops\n']]);
  const fin = events[5];
  assert.ok(fin.type === 'vertex.finished');
  assert.equal(fin.durationMs, 500);
  assert.deepEqual(fin.vertex, vertex(2));
  // A reader that attaches after the end (not from the start) ends at once.
  assert.deepEqual(await collect(readProgress(redis, 'b-roundtrip')), []);
  const ttl = await redis.ttl(progressStreamKey('b-roundtrip'));
  assert.ok(ttl > 0 && ttl <= 86400, `ttl ${ttl}`);
});

test('events emitted without waiting are appended in call order, logs before the step they belong to ends', async () => {
  const w = new ProgressWriter(redis, 'b-burst');
  const emitted: Promise<void>[] = [];
  for (let n = 0; n < 300; n++) {
    emitted.push(w.started(vertex(n % 9 + 1), n));
    w.log(vertex(n % 9 + 1).digest, `line ${n}\n`);
    emitted.push(w.finished(vertex(n % 9 + 1), n, n + 1));
  }
  await Promise.all(emitted);
  await w.close();
  const events = await collect(readProgress(redis, 'b-burst', { fromStart: true }));
  const order = events.map((e) => (e.type === 'vertex.log' ? `log ${e.data.toString().trim()}` : e.type === 'vertex.started' ? `started ${e.startedMs}` : e.type === 'vertex.finished' ? `finished ${e.startedMs}` : e.type));
  assert.deepEqual(order, Array.from({ length: 300 }, (_, n) => [`started ${n}`, `log line ${n}`, `finished ${n}`]).flat());
});

test('a reader attaching mid-build with fromStart replays everything; a live reader sees only new events', async () => {
  const w = new ProgressWriter(redis, 'b-mid');
  await w.emit({ type: 'build.accepted', buildId: 'b-mid', platforms: ['linux/amd64'] });
  await w.started(vertex(1), 1);
  const before = await blockedReaders();
  const live = readProgress(redis, 'b-mid', { blockMs: 30_000 });
  const liveFirst = live.next(); // attaches: starts after the latest event
  // Blocked in XREAD means it has chosen its start point; only then may the build go on.
  await until('the live reader to block on the stream', async () => (await blockedReaders()) > before);
  const replay = collect(readProgress(redis, 'b-mid', { fromStart: true, blockMs: 200 }));
  await w.finished(vertex(1), 1, 2);
  await w.started(vertex(2), 3);
  await w.close();
  const all = await replay;
  assert.deepEqual(all.map((e) => e.type), ['build.accepted', 'vertex.started', 'vertex.finished', 'vertex.started']);
  const first = await liveFirst;
  const rest = await collect({ [Symbol.asyncIterator]: () => live });
  assert.deepEqual([first.value?.type, ...rest.map((e) => e.type)], ['vertex.finished', 'vertex.started']);
  // Resuming after a known id gives the remainder.
  assert.deepEqual((await collect(readProgress(redis, 'b-mid', { after: all[1].streamId }))).map((e) => e.type), ['vertex.finished', 'vertex.started']);
});

test('logs are batched rather than written per call', async () => {
  const w = new ProgressWriter(redis, 'b-batch', { flushIntervalMs: 50 });
  for (let i = 0; i < 200; i++) w.log(vertex(1).digest, `line ${i}\n`);
  // The interval flushes the batch without close(): wait for it to reach the stream.
  await until('the timer to flush the logs', async () => (await redis.xlen(progressStreamKey('b-batch'))) > 0);
  await w.close();
  const logs = (await collect(readProgress(redis, 'b-batch', { fromStart: true }))).filter((e) => e.type === 'vertex.log');
  assert.ok(logs.length >= 1 && logs.length <= 3, `${logs.length} log events`);
  const text = Buffer.concat(logs.map((e) => (e.type === 'vertex.log' ? e.data : Buffer.alloc(0)))).toString();
  assert.equal(text, Array.from({ length: 200 }, (_, i) => `line ${i}\n`).join(''));
});

test('the log cap truncates with a marker, drops later output and never splits a UTF-8 character', async () => {
  const cap = 100;
  const w = new ProgressWriter(redis, 'b-cap', { maxLogBytesPerVertex: cap, flushBytes: 16 });
  const d = vertex(1).digest;
  const text = 'ab€'.repeat(40); // 5 bytes per repetition, so the cap (100) lands inside a '€'
  // Feed one byte at a time so batches are cut at arbitrary points, including inside characters.
  const bytes = Buffer.from('x' + text);
  let accepted = true;
  for (let i = 0; i < bytes.length && accepted; i++) accepted = w.log(d, bytes.subarray(i, i + 1));
  assert.equal(accepted, false);
  assert.equal(w.log(d, 'after the cap\n'), false);
  w.log(vertex(2).digest, 'other vertex unaffected\n');
  await w.close();
  const logs = (await collect(readProgress(redis, 'b-cap', { fromStart: true }))).filter((e) => e.type === 'vertex.log');
  const mine = logs.filter((e) => e.type === 'vertex.log' && e.digest === d);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (const e of mine) if (e.type === 'vertex.log') decoder.decode(e.data); // throws on a split character
  const last = mine.at(-1)!;
  assert.ok(last.type === 'vertex.log');
  assert.equal(last.truncated, true);
  assert.equal(mine.filter((e) => e.type === 'vertex.log' && e.truncated).length, 1);
  const all = Buffer.concat(mine.map((e) => (e.type === 'vertex.log' ? e.data : Buffer.alloc(0)))).toString();
  const marker = TRUNCATION_MARKER(cap);
  assert.ok(all.endsWith(marker));
  const kept = Buffer.from(all.slice(0, -marker.length));
  // 'x' + 19 * 'ab€' = 96 bytes, then 'ab' = 98; the next '€' would cross 100, so it is dropped whole.
  assert.equal(kept.length, 98);
  assert.equal(kept.toString(), ('x' + text).slice(0, 1 + 19 * 3 + 2));
  assert.ok(!all.includes('after the cap'));
  assert.ok(logs.some((e) => e.type === 'vertex.log' && e.digest === vertex(2).digest && e.data.toString() === 'other vertex unaffected\n'));
});

test('abort ends a reader blocked on a build that never ends', async () => {
  const w = new ProgressWriter(redis, 'b-abort');
  await w.started(vertex(1), 1);
  const ac = new AbortController();
  const seen: string[] = [];
  const before = await blockedReaders();
  // A block far longer than the deadline below: ending in time proves the abort interrupted it.
  const blockMs = 120_000;
  const done = (async () => {
    for await (const e of readProgress(redis, 'b-abort', { fromStart: true, signal: ac.signal, blockMs })) seen.push(e.type);
  })();
  await until('the reader to block on the stream', async () => (await blockedReaders()) > before);
  const t0 = Date.now();
  ac.abort();
  await done;
  assert.deepEqual(seen, ['vertex.started']);
  assert.ok(Date.now() - t0 < blockMs / 2, 'the blocked XREAD was interrupted');
  await w.close();
});

test('the stream is trimmed to about streamMaxLen entries', async () => {
  const w = new ProgressWriter(redis, 'b-trim', { streamMaxLen: 100 });
  for (let i = 0; i < 1000; i++) void w.cached(vertex(1));
  await w.close();
  const len = await redis.xlen(progressStreamKey('b-trim'));
  assert.ok(len < 400, `stream length ${len}`);
});
