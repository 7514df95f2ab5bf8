// A StageConsumer in its own process, so a test can SIGKILL a worker mid-stage.
// Env: REDIS_URL, REDIS_CLUSTER ('1': a Redis Cluster), PREFIX, WORKER_ID, PLATFORM, LIVENESS_MS (heartbeat TTL and job lock, default
// 1000). Stages whose payload has `hangInChild` never finish here.
import { StageConsumer } from './StageConsumer.js';

const consumer = new StageConsumer({
  redis: { url: process.env.REDIS_URL!, cluster: process.env.REDIS_CLUSTER === '1' },
  prefix: process.env.PREFIX!,
  worker: { id: process.env.WORKER_ID!, nativePlatforms: [process.env.PLATFORM!], emulatedPlatforms: [], capacity: 2 },
  heartbeatMs: 200, heartbeatTtlMs: Number(process.env.LIVENESS_MS ?? 1000), lockDurationMs: Number(process.env.LIVENESS_MS ?? 1000), stalledIntervalMs: 300, pollMs: 200,
  handler: async (job) => {
    if ((job.payload as { hangInChild?: boolean } | null)?.hangInChild) await new Promise(() => undefined);
    return { stage: job.stageId, worker: process.env.WORKER_ID };
  },
});
await consumer.start();
process.stdout.write('ready\n');
