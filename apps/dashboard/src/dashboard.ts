// buildyard-dashboard: wires config into the dashboard server and serves until a signal.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '@buildyard/config';
import { redisKeys } from '@buildyard/contracts';
import { getMetrics, logUnhandledRejections, processLoggers, startTelemetry } from '@buildyard/telemetry';
import { createDashboardServer } from './api/createDashboardServer.js';


async function main(): Promise<void> {
  const telemetry = startTelemetry('buildyard-dashboard');
  const config = loadConfig();
  const { log, announce } = processLoggers('dashboard', config.log.level);
  logUnhandledRejections(log);
  const listen = config.dashboard.listen;
  const sep = listen.lastIndexOf(':');
  const host = listen.slice(0, sep).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(listen.slice(sep + 1));
  const server = await createDashboardServer({
    redisUrl: config.redis.url,
    redisCluster: config.redis.cluster,
    keys: redisKeys(config.redis.keyPrefix),
    tokens: { readToken: config.dashboard.readToken, adminToken: config.dashboard.adminToken, metricsToken: config.dashboard.metricsToken },
    uiDir: join(dirname(fileURLToPath(import.meta.url)), 'public'),
    tenantLimit: config.limits.tenantConcurrency,
    blobStore: config.blobStore.type,
    metrics: getMetrics(),
    log,
  });
  await server.app.listen({ host, port });
  announce.info({ listen: `${host}:${port}` }, 'dashboard listening');
  const stop = async () => {
    await server.close();
    await telemetry.shutdown();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: Error) => {
  console.error(`buildyard-dashboard: ${err.message.split('\n')[0]}`);
  process.exit(1);
});
