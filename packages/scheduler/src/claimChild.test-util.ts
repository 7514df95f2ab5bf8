// A dispatcher process that dies between claim and queue: it runs the real claim script, says
// which stages it claimed, then waits for the test's SIGKILL without ever queueing them.
// Env: REDIS_URL, REDIS_CLUSTER ('1': a Redis Cluster), PREFIX, LEASE_MS (its claim lease).
import { connectRedis } from './connectRedis.js';
import { StageStore } from './StageStore.js';

const redis = connectRedis({ url: process.env.REDIS_URL!, cluster: process.env.REDIS_CLUSTER === '1' });
const claimed = await new StageStore(redis, process.env.PREFIX!).claim('fleet', { id: `child-${process.pid}`, leaseMs: Number(process.env.LEASE_MS) });
process.stdout.write(`${JSON.stringify(claimed.map((c) => c.ref))}\n`);
setInterval(() => undefined, 60_000); // stay alive until killed
