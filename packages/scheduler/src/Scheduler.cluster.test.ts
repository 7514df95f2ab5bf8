// The scheduler's integration suite (Scheduler.test.ts) on a real 3-master Redis Cluster from
// testkit: every script, MULTI and pipeline must stay in the scheduler's one hash slot.
process.env.BUILDYARD_TEST_REDIS_CLUSTER = '1';
await import('./Scheduler.test.js');
