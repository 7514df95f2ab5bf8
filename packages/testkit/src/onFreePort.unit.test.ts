import { test } from 'node:test';
import assert from 'node:assert/strict';
import { onFreePort } from './services.js';

test('a server that lost its port to another process before it bound is started again on another port; other failures are not retried', async () => {
  const ports: number[] = [];
  const port = await onFreePort(async (p) => {
    ports.push(p);
    if (ports.length < 3) throw new Error('redis-server exited before it was ready: Could not create server TCP listening socket *:1234: bind: Address already in use');
    return p;
  });
  assert.equal(ports.length, 3);
  assert.equal(port, ports[2]);
  assert.equal(new Set(ports).size, 3, 'each attempt on a port not handed out before');
  let calls = 0;
  await assert.rejects(onFreePort(async () => { calls++; throw new Error('bad config'); }), /bad config/);
  assert.equal(calls, 1);
  await assert.rejects(onFreePort(async () => { throw new Error('x exited before it was ready: y'); }, 2), /exited before it was ready/);
});
