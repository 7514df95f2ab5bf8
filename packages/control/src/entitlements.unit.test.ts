import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BuildPlan } from '@buildyard/graph';
import { missingEntitlement, parseEntitlements } from './entitlements.js';

test('entitlements are granted per tenant, * for every tenant, and nothing by default', () => {
  const granted = parseEntitlements(['alice:network.host', '*:security.insecure', 'team:a:network.host']);
  assert.deepEqual([...granted('alice')].sort(), ['network.host', 'security.insecure']);
  assert.deepEqual([...granted('bob')], ['security.insecure']);
  assert.deepEqual([...granted('team:a')].sort(), ['network.host', 'security.insecure']);
  assert.deepEqual([...parseEntitlements([])('alice')], []);
  assert.throws(() => parseEntitlements(['alice:device']), /auth\.entitlements: "alice:device" is not tenant:entitlement/);
  assert.throws(() => parseEntitlements(['network.host']), /is not tenant:entitlement/);
});

test('the first exec needing a missing entitlement is named with its line, in BuildKit\'s words', () => {
  const exec = (line: number, network: string, security: string) => ({ kind: 'exec', line, network, security });
  const plan = { platforms: [{ stages: [{ vertices: [{ kind: 'file', line: 2 }, exec(3, 'default', 'sandbox'), exec(4, 'none', 'insecure'), exec(5, 'host', 'sandbox')] }] }] } as unknown as BuildPlan;
  assert.deepEqual(missingEntitlement(plan, '', new Set()), { message: 'security.insecure is not allowed: RUN --security=insecure at line 4 needs it; the server grants security.insecure per tenant (auth.entitlements, e.g. BUILDYARD_ENTITLEMENTS=<tenant>:security.insecure)', line: 4 });
  assert.match(missingEntitlement(plan, '', new Set(['security.insecure']))?.message ?? '', /^network\.host is not allowed: RUN --network=host at line 5/);
  assert.equal(missingEntitlement(plan, 'default', new Set(['security.insecure', 'network.host'])), undefined);
  assert.match(missingEntitlement(plan, 'host', new Set(['security.insecure']))?.message ?? '', /^network\.host is not allowed: --network host needs it/);
});
