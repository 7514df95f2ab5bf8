// The distributed e2e suite (distributed.test.ts) on a 3-master Redis Cluster with a replica
// each (issue 19 item 2): every process opens a cluster client, and every script, MULTI and
// pipeline of the frontend, the workers and the scheduler must stay within one slot.
process.env.BUILDYARD_TEST_REDIS = 'cluster';
await import('./distributed.test.js');
