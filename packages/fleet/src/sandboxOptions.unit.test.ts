import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig } from '@buildyard/config';
import { parseTenantLimits, sandboxOptions } from './sandboxOptions.js';

test('the worker sandbox from config: cluster services protected, lists resolved, tenants apart', async () => {
  const config = loadConfig({ env: {
    BUILDYARD_REDIS_URL: 'redis://:pw@10.1.2.3:6379', BUILDYARD_BLOB_STORE: 'registry', BUILDYARD_BLOB_REPOSITORY: '10.1.2.4:5000/cache',
    BUILDYARD_INSECURE_REGISTRIES: '10.1.2.5:5000', BUILDYARD_WORKER_EGRESS_DENY: '10.0.0.0/8,localhost', BUILDYARD_WORKER_EGRESS_ALLOW: '10.9.9.9',
    BUILDYARD_WORKER_EGRESS_TENANT_DENY: 'bob=192.0.2.0/24', BUILDYARD_WORKER_SANDBOX_MEMORY: '1073741824',
    BUILDYARD_WORKER_SANDBOX_TENANT_LIMITS: 'alice:pids=512,alice:cpus=1.5', BUILDYARD_WORKER_DNS_NAMESERVERS: '10.0.0.53',
  } });
  const sandbox = await sandboxOptions(config);
  const egress = sandbox.executor.egress;
  assert.ok(egress);
  assert.deepEqual(egress.protect, ['10.1.2.3', '10.1.2.4', '10.1.2.5']);
  assert.deepEqual(egress.deny, ['10.0.0.0/8', '127.0.0.1']);
  assert.deepEqual(egress.allow, ['10.9.9.9']);
  assert.equal(egress.denyPrivate, true, 'on unless the operator turns it off');
  assert.deepEqual(sandbox.executor.dns, { nameservers: ['10.0.0.53'], search: [], options: [] });
  assert.deepEqual(sandbox.executor.limits, { pids: 16384, memoryBytes: 1073741824, cpus: 0, diskBytes: 0 });
  assert.equal(sandbox.executor.seccompProfile, '/usr/share/buildyard/seccomp/docker-default.json');
  assert.deepEqual(sandbox.tenantEgress('bob'), { allow: [], deny: ['192.0.2.0/24'] });
  assert.equal(sandbox.tenantEgress('alice'), undefined);
  assert.deepEqual(sandbox.tenantLimits('alice'), { pids: 512, cpus: 1.5 });
  const off = await sandboxOptions(loadConfig({ env: { BUILDYARD_WORKER_EGRESS: 'false', BUILDYARD_WORKER_SECCOMP_PROFILE: 'unconfined', BUILDYARD_WORKER_EGRESS_DENY_PRIVATE: 'false' } }));
  // RUN steps get no egress, but the cluster's services stay protected from what the worker
  // fetches for builds (ADD <url>).
  assert.ok(off.executor.egress);
  assert.equal(off.executor.egress.enabled, false);
  assert.equal(off.executor.egress.denyPrivate, false);
  assert.deepEqual(off.executor.egress.protect, ['127.0.0.1']);
  assert.equal(off.executor.seccompProfile, false);
  // Every seed node of a Redis Cluster is protected, not only the first.
  const onCluster = await sandboxOptions(loadConfig({ env: { BUILDYARD_REDIS_URL: 'redis://:pw@10.1.2.3:7000,10.1.2.6:7001', BUILDYARD_REDIS_CLUSTER: 'true' } }));
  assert.ok(onCluster.executor.egress);
  assert.deepEqual(onCluster.executor.egress.protect, ['10.1.2.3', '10.1.2.6']);
});

test('bad entries name the option and the entry', async () => {
  assert.throws(() => parseTenantLimits(['alice:ram=1']), /worker\.sandbox\.tenantLimits: "alice:ram=1" is not tenant:limit=value/);
  await assert.rejects(sandboxOptions(loadConfig({ env: { BUILDYARD_WORKER_EGRESS_TENANT_DENY: '10.0.0.0/8' } })), /worker\.egress\.tenantDeny: "10\.0\.0\.0\/8" is not tenant=range/);
});
