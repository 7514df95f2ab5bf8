// Issue 14, item 7: a Solve naming a build id another tenant already uses answered
// ALREADY_EXISTS, telling the attacker that build exists. Build ids are now names within a
// tenant: bob's Solve with alice's id runs his own build, shown to him under that name, and
// neither tenant sees or reaches the other's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import type { StatusResponse } from '@buildyard/proto';
import { solve } from '../grpcClient.js';
import { buildStatus } from './clusterCalls.js';
import { clusterFixture } from './clusterFixture.js';

const fx = clusterFixture({ workers: 1, tenants: ['alice', 'bob'] }, 'ids');
const nonce = `${process.pid}-${Date.now()}`;

test('a Solve with another tenant\'s build id runs as if the id were free; only the own tenant\'s reuse is refused', { timeout: 120_000 }, async () => {
  const id = `release-${nonce}`;
  const alice = await solve(fx.cluster, fx.context('alice', `FROM ${fx.cluster.busybox.reference}\nRUN echo alice-${nonce}\n`), { buildId: id, platforms: ['linux/amd64'] }, { token: fx.cluster.tokens.alice });
  assert.equal(alice.error, undefined, alice.error?.message);

  // Bob names his build the same: he gets exactly what a fresh id gives, his own build.
  const bob = await solve(fx.cluster, fx.context('bob', `FROM ${fx.cluster.busybox.reference}\nRUN echo bob-${nonce}\n`), { buildId: id, platforms: ['linux/amd64'] }, { token: fx.cluster.tokens.bob });
  assert.equal(bob.error, undefined, bob.error?.message);
  assert.equal(bob.events.find((e) => e.accepted)?.accepted?.buildId, id, 'accepted under the name he chose');
  assert.equal(bob.result?.buildId, id);
  assert.match(bob.logs, new RegExp(`bob-${nonce}`));
  assert.doesNotMatch(bob.logs, new RegExp(`alice-${nonce}`), 'none of alice\'s output');

  // Each tenant's Status for the id is its own build.
  const [aliceStatus, bobStatus] = await Promise.all([buildStatus(fx.cluster, fx.cluster.tokens.alice, id), buildStatus(fx.cluster, fx.cluster.tokens.bob, id)]);
  const only = (s: StatusResponse) => { assert.equal(s.builds.length, 1); return s.builds[0]; };
  assert.deepEqual([only(aliceStatus).tenant, only(aliceStatus).buildId], ['alice', id]);
  assert.deepEqual([only(bobStatus).tenant, only(bobStatus).buildId], ['bob', id]);
  assert.notEqual(only(aliceStatus).digest, only(bobStatus).digest, 'two different builds');

  // Reusing one's own id is the only ALREADY_EXISTS.
  for (const token of [fx.cluster.tokens.alice, fx.cluster.tokens.bob]) {
    await assert.rejects(solve(fx.cluster, fx.context(`again-${token.slice(0, 6)}`, `FROM ${fx.cluster.busybox.reference}\n`), { buildId: id, platforms: ['linux/amd64'] }, { token }),
      (e: ServiceError) => e.code === status.ALREADY_EXISTS && e.message.includes(id));
  }
});
