import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cidrContains, formatCidr, parseCidr, parseCidrList, parseIPv4 } from './ipv4.js';

test('IPv4 addresses and ranges parse to canonical ranges, or not at all', () => {
  assert.equal(parseIPv4('10.1.2.3'), 0x0a010203);
  for (const bad of ['10.1.2', '10.1.2.256', '1.2.3.4.5', 'a.b.c.d', '01234.1.1.1', '::1', '']) assert.equal(parseIPv4(bad), undefined, bad);
  assert.equal(formatCidr(parseCidr('10.1.2.3/8')!), '10.0.0.0/8');
  assert.equal(formatCidr(parseCidr('169.254.169.254')!), '169.254.169.254/32');
  assert.equal(formatCidr(parseCidr('0.0.0.0/0')!), '0.0.0.0/0');
  for (const bad of ['10.0.0.0/33', '10.0.0.0/', '10.0.0.0/8/8', 'example.com', '10.0.0.0/x']) assert.equal(parseCidr(bad), undefined, bad);
  const net = parseCidr('192.168.4.0/22')!;
  assert.ok(cidrContains(net, parseIPv4('192.168.7.255')!));
  assert.ok(!cidrContains(net, parseIPv4('192.168.8.0')!));
  assert.throws(() => parseCidrList(['10.0.0.0/8', 'nope'], 'worker.egress.deny'), /^Error: worker\.egress\.deny: "nope" is not an IPv4 address or CIDR range/);
});
