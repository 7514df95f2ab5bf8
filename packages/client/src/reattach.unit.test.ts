import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { SolveEvent } from '@buildyard/proto';
import { reattaching } from './reattach.js';

const accepted = SolveEvent.fromPartial({ accepted: { buildId: 'b1', platforms: [] } });
const warn = (message: string) => SolveEvent.fromPartial({ warning: { message } });
const result = SolveEvent.fromPartial({ result: { buildId: 'b1', digest: 'sha256:00' } });
const cut = (code = status.UNAVAILABLE) => Object.assign(new Error('cut'), { code, details: 'cut', metadata: undefined });

/** A build's whole progress stream, as Attach replays it from the start. */
const stream = [accepted, warn('one'), warn('two'), warn('three'), result];

async function* upTo(n: number, code?: number): AsyncGenerator<SolveEvent> {
  for (const ev of stream.slice(0, n)) yield ev;
  if (code !== undefined) throw cut(code);
}

async function collect(it: AsyncIterable<SolveEvent>): Promise<string[]> {
  const out: string[] = [];
  for await (const ev of it) out.push(ev.accepted ? 'accepted' : ev.warning ? ev.warning.message : ev.result ? 'result' : '?');
  return out;
}

test('a cut stream continues from its position on re-attach, across several cuts', async () => {
  const attaches: string[] = [];
  let n = 0;
  const attach = (id: string) => { attaches.push(id); return ++n === 1 ? upTo(3, status.INTERNAL) : upTo(stream.length); };
  assert.deepEqual(await collect(reattaching(upTo(2, status.UNAVAILABLE), attach, { pauseMs: 1 })), ['accepted', 'one', 'two', 'three', 'result']);
  assert.deepEqual(attaches, ['b1', 'b1']);
});

test('a stream cut before the build was accepted, or ended by an answer, is not re-attached', async () => {
  const attach = () => { throw new Error('must not attach'); };
  await assert.rejects(collect(reattaching(upTo(0, status.UNAVAILABLE), attach)), /cut/);
  await assert.rejects(collect(reattaching(upTo(2, status.NOT_FOUND), attach)), /cut/);
  const aborted = AbortSignal.abort();
  await assert.rejects(collect(reattaching(upTo(2, status.UNAVAILABLE), attach, { signal: aborted })), /cut/);
});

test('re-attaching gives up once it has failed for retryForMs in a row', async () => {
  let attempts = 0;
  const attach = () => { attempts++; return upTo(0, status.UNAVAILABLE); };
  await assert.rejects(collect(reattaching(upTo(2, status.UNAVAILABLE), attach, { retryForMs: 30, pauseMs: 5 })), /cut/);
  assert.ok(attempts >= 2, `retried (${attempts})`);
});

test('a stream cut before acceptance attaches by the client\'s build name; a build the builder never recorded is sent again under a new name, at most twice', async () => {
  const attaches: string[] = [];
  const found = (id: string) => { attaches.push(id); return upTo(stream.length); };
  assert.deepEqual(await collect(reattaching(upTo(0, status.UNAVAILABLE), found, { buildId: 'n1', pauseMs: 1 })), ['accepted', 'one', 'two', 'three', 'result']);
  assert.deepEqual(attaches, ['n1']);

  const unknown = (id: string) => { attaches.push(id); return upTo(0, status.NOT_FOUND); };
  let sent = 0;
  const resubmit = () => ({ buildId: `n${++sent + 1}`, stream: sent === 1 ? upTo(0, status.UNAVAILABLE) : upTo(stream.length) });
  attaches.length = 0;
  assert.deepEqual(await collect(reattaching(upTo(0, status.UNAVAILABLE), unknown, { buildId: 'n1', pauseMs: 1, resubmit })), ['accepted', 'one', 'two', 'three', 'result']);
  assert.deepEqual(attaches, ['n1', 'n2'], 'each cut attaches by the name of the Solve it cut');
  assert.equal(sent, 2);

  let always = 0;
  const alwaysCut = () => ({ buildId: `m${++always}`, stream: upTo(0, status.UNAVAILABLE) });
  await assert.rejects(collect(reattaching(upTo(0, status.UNAVAILABLE), unknown, { buildId: 'm0', pauseMs: 1, resubmit: alwaysCut })), /cut/);
  assert.equal(always, 2, 'sent again twice, then the cut is reported');

  // Before acceptance only UNAVAILABLE is a cut: anything else is the builder's answer.
  const never = () => { throw new Error('must not attach'); };
  await assert.rejects(collect(reattaching(upTo(0, status.INTERNAL), never, { buildId: 'n1', resubmit })), /cut/);
});
