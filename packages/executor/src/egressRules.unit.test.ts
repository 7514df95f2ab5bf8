import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { EgressRules } from './egressRules.js';

const rules = new EgressRules({ protect: ['10.1.0.5'], deny: ['192.0.2.0/24', '0.0.0.0/0'], allow: ['192.0.2.8/29', '10.1.0.0/16'] });

test('protected addresses are refused whatever the allow lists say; allow wins over deny', () => {
  const alice = rules.forTenant({ allow: ['127.0.0.1', '198.51.100.7'], deny: ['198.51.100.0/24'] });
  const hostAddress = Object.values(networkInterfaces()).flat().find((a) => a?.family === 'IPv4' && !a.internal)?.address;
  for (const ip of ['127.0.0.1', '127.9.9.9', '169.254.169.254', '100.100.100.200', '168.63.129.16', '0.0.0.0', '224.0.0.1', '10.1.0.5', ...(hostAddress ? [hostAddress] : [])]) {
    assert.deepEqual(alice.check(ip), { allowed: false, by: 'worker.egress' }, ip);
  }
  assert.deepEqual(alice.check('192.0.2.9'), { allowed: true }, 'the worker\'s allow');
  assert.deepEqual(alice.check('10.1.2.3'), { allowed: true }, 'allowed, outside the protected /32');
  assert.deepEqual(alice.check('198.51.100.7'), { allowed: true }, 'the tenant\'s allow');
  assert.deepEqual(alice.check('192.0.2.1'), { allowed: false, by: 'worker.egress.deny' });
  assert.deepEqual(alice.check('8.8.8.8'), { allowed: false, by: 'worker.egress.deny' }, '0.0.0.0/0 makes allow an allowlist');
});

test('a tenant\'s deny list names itself; other tenants are not affected', () => {
  const open = new EgressRules({ protect: [], deny: [], allow: [] });
  assert.deepEqual(open.forTenant({ deny: ['203.0.113.0/24'] }).check('203.0.113.4'), { allowed: false, by: 'worker.egress.tenantDeny' });
  assert.deepEqual(open.forTenant().check('203.0.113.4'), { allowed: true });
});

test('IPv6 and anything that is not an address are refused: builds have IPv4 only', () => {
  const open = new EgressRules({ protect: [], deny: [], allow: [] }).forTenant();
  for (const a of ['::1', '::ffff:127.0.0.1', 'fe80::1', '2001:db8::1', 'example.com', '']) {
    assert.equal(open.check(a).allowed, false, a);
  }
  assert.throws(() => rules.forTenant({ deny: ['nope'] }), /tenant egress deny list: "nope" is not an IPv4 address/);
});

test('worker.egress.denyPrivate refuses the private ranges, naming itself and what opens them; allow makes exceptions, protect still wins', () => {
  const rules = new EgressRules({ protect: ['10.1.0.5'], deny: [], allow: ['10.9.9.9', '10.1.0.5'], denyPrivate: true }).forTenant();
  const refused = { allowed: false, by: 'worker.egress.denyPrivate, a private range; worker.egress.allow opens an address' };
  for (const ip of ['10.0.0.1', '10.96.0.1', '172.16.0.1', '172.31.255.254', '192.168.1.10', '100.64.0.1', '100.127.255.254']) assert.deepEqual(rules.check(ip), refused, ip);
  for (const ip of ['172.15.255.255', '172.32.0.1', '192.169.0.1', '100.63.255.255', '100.128.0.1', '8.8.8.8']) assert.deepEqual(rules.check(ip), { allowed: true }, ip);
  assert.deepEqual(rules.check('10.9.9.9'), { allowed: true }, 'allowed by the operator');
  assert.deepEqual(rules.check('10.1.0.5'), { allowed: false, by: 'worker.egress' }, 'protected whatever allow says');
  assert.ok(rules.deny.some((c) => c.prefix === 8), 'the step\'s nftables deny set holds them too');
  assert.deepEqual(new EgressRules({ protect: [], deny: [], allow: [] }).forTenant().check('10.0.0.1'), { allowed: true }, 'off: as BuildKit');
});
