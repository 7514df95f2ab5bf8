#!/usr/bin/env node
// Health probe of `buildyard-worker serve`, which has no HTTP endpoint: the worker is healthy
// when its heartbeat key in Redis is current (the same test the scheduler uses before placing
// work on it, see WorkerRegistry.get). Reads config like the worker does (BUILDYARD_* env,
// BUILDYARD_CONFIG TOML), so the worker id must be fixed (BUILDYARD_WORKER_ID / worker.id).
//
//   node infra/deploy/probes/worker-alive.mjs           liveness: exit 1 only when Redis answers
//                                                       and the heartbeat is missing; a Redis
//                                                       outage is not the worker's fault, so it
//                                                       must not restart every worker
//   node infra/deploy/probes/worker-alive.mjs --ready   readiness: also exit 1 when Redis is down
//
// Exit codes: 0 healthy, 1 unhealthy, 2 misconfigured (no fixed worker id, bad config).
import { Redis } from 'ioredis';
import { loadConfig } from '@buildyard/config';
import { redisKeys } from '@buildyard/contracts';
import { WorkerRegistry } from '@buildyard/scheduler';

const ready = process.argv.includes('--ready');
const timeoutMs = Number(process.env.BUILDYARD_PROBE_TIMEOUT_MS ?? 3000);

let config;
try {
  config = loadConfig();
} catch (err) {
  console.error(`worker-alive: ${err.message}`);
  process.exit(2);
}
const id = config.worker.id;
if (!id) {
  console.error('worker-alive: worker.id is empty, so the probe cannot find the heartbeat: set BUILDYARD_WORKER_ID (on Kubernetes, from metadata.name)');
  process.exit(2);
}

const redis = new Redis(config.redis.url, {
  lazyConnect: true, connectTimeout: timeoutMs, commandTimeout: timeoutMs,
  maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false,
});
redis.on('error', () => { /* reported through the failed connect below */ });
let code;
try {
  await redis.connect();
  const worker = await new WorkerRegistry(redis, { prefix: redisKeys(config.redis.keyPrefix).scheduler.prefix, heartbeatTtlMs: config.heartbeat.timeoutMs }).get(id);
  if (worker) {
    console.log(`worker ${id} alive: ${worker.running} running, ${worker.draining ? 'draining' : 'taking work'}`);
    code = 0;
  } else {
    console.error(`worker-alive: worker ${id} has no current heartbeat in ${redactUrl(config.redis.url)}: it is stuck, starting or was removed`);
    code = 1;
  }
} catch (err) {
  console.error(`worker-alive: redis ${redactUrl(config.redis.url)} unreachable (${err.message.split('\n')[0]})${ready ? '' : '; not judging the worker'}`);
  code = ready ? 1 : 0;
}
redis.disconnect();
process.exit(code);

function redactUrl(url) {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
