import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { BuildPlan } from '@buildyard/graph';
import { allowedEntitlements, missingEntitlement, parseEntitlements } from './entitlements.js';
import { parseAddHosts } from './runStepOptions.js';

test('entitlements are granted per tenant, * for every tenant, and nothing by default', () => {
  const granted = parseEntitlements(['alice:network.host', '*:security.insecure', 'team:a:network.host']);
  assert.deepEqual([...granted('alice')].sort(), ['network.host', 'security.insecure']);
  assert.deepEqual([...granted('bob')], ['security.insecure']);
  assert.deepEqual([...granted('team:a')].sort(), ['network.host', 'security.insecure']);
  assert.deepEqual([...parseEntitlements([])('alice')], []);
  assert.throws(() => parseEntitlements(['alice:device']), /auth\.entitlements: "alice:device" is not tenant:entitlement/);
  assert.throws(() => parseEntitlements(['network.host']), /is not tenant:entitlement/);
});

test('the first exec needing an entitlement the client did not ask for is named with its line, in BuildKit\'s words', () => {
  const exec = (line: number, network: string, security: string) => ({ kind: 'exec', line, network, security });
  const plan = { platforms: [{ stages: [{ vertices: [{ kind: 'file', line: 2 }, exec(3, 'default', 'sandbox'), exec(4, 'none', 'insecure'), exec(5, 'host', 'sandbox')] }] }] } as unknown as BuildPlan;
  const none = new Set<never>();
  const both = new Set(['security.insecure', 'network.host'] as const);
  // Neither asked nor granted: both steps are named.
  assert.deepEqual(missingEntitlement(plan, '', none, none), { message: 'security.insecure is not allowed: RUN --security=insecure at line 4 needs it; build with --allow security.insecure, which the server must also grant your tenant (auth.entitlements, e.g. BUILDYARD_ENTITLEMENTS=<tenant>:security.insecure)', line: 4 });
  // Granted but not asked for: asking is enough.
  assert.deepEqual(missingEntitlement(plan, '', none, both), { message: 'security.insecure is not allowed: RUN --security=insecure at line 4 needs it; build with --allow security.insecure', line: 4 });
  assert.match(missingEntitlement(plan, '', new Set(['security.insecure'] as const), both)?.message ?? '', /^network\.host is not allowed: RUN --network=host at line 5 needs it; build with --allow network\.host$/);
  assert.equal(missingEntitlement(plan, 'default', both, both), undefined);
  assert.match(missingEntitlement(plan, 'host', new Set(['security.insecure'] as const), both)?.message ?? '', /^network\.host is not allowed: --network host needs it/);
});

test('the client\'s --allow must be granted to the tenant, used or not; unknown names are refused', () => {
  const granted = parseEntitlements(['alice:network.host'])('alice');
  assert.deepEqual([...allowedEntitlements(['network.host'], granted)], ['network.host']);
  assert.deepEqual([...allowedEntitlements([], granted)], []);
  assert.throws(() => allowedEntitlements(['security.insecure'], granted), /^Error: granting entitlement security\.insecure is not allowed by build daemon configuration: the server grants security\.insecure per tenant/);
  assert.throws(() => allowedEntitlements(['device'], granted), /^Error: unknown entitlement "device": --allow takes network\.host or security\.insecure$/);
});

test('--add-host entries are name:ip or name=ip with a real address', () => {
  assert.deepEqual(parseAddHosts(['cache.local:10.0.0.5', 'v6=::1', 'db:fe80::1']), [{ host: 'cache.local', ip: '10.0.0.5' }, { host: 'v6', ip: '::1' }, { host: 'db', ip: 'fe80::1' }]);
  for (const bad of ['nohost', ':10.0.0.1', 'a:not-an-ip', 'a b:10.0.0.1', 'a:host-gateway', 'x'.repeat(2000) + ':1.2.3.4']) {
    assert.throws(() => parseAddHosts([bad]), /^Error: invalid --add-host ".{0,100}": use name:ip/, bad.slice(0, 20));
  }
});
