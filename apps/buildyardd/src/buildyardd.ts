// buildyardd: wiring of @buildyard/control (the gRPC frontend) and the scheduler it hosts.
import { readFileSync } from 'node:fs';
import { ServerCredentials } from '@grpc/grpc-js';
import { loadConfig, loadTokens } from '@buildyard/config';
import { openRedis, redisKeys, reportOutages } from '@buildyard/contracts';
import { Frontend } from '@buildyard/control';
import { EgressRules } from '@buildyard/executor';
import { sandboxOptions } from '@buildyard/fleet';
import { BuildkitServer } from '@buildyard/buildkit-api';
import { formatPlatform, hostPlatform } from '@buildyard/oci';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { logUnhandledRejections, processLoggers, startHealthServer, startTelemetry } from '@buildyard/telemetry';

const version = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;

async function main(): Promise<void> {
  const telemetry = startTelemetry('buildyardd');
  const config = loadConfig();
  const { log, announce } = processLoggers('buildyardd', config.log.level);
  logUnhandledRejections(log);
  const tokens = loadTokens(config);
  if (tokens.size === 0) throw new Error('no tokens configured: set BUILDYARD_TOKENS=tenant:token or auth.tokensFile, every call needs one');
  // One Redis or a Redis Cluster (redis.cluster): every process opens it the same way.
  const target = { url: config.redis.url, cluster: config.redis.cluster };
  const redis = openRedis(target, { maxRetriesPerRequest: null });
  reportOutages(redis, log);
  const keys = redisKeys(config.redis.keyPrefix);
  const scheduler = new Scheduler(target, { prefix: keys.scheduler.prefix, tenantLimit: config.limits.tenantConcurrency, heartbeatTtlMs: config.heartbeat.timeoutMs });
  const workers = new WorkerRegistry(target, { prefix: keys.scheduler.prefix, heartbeatTtlMs: config.heartbeat.timeoutMs });
  // What the frontend fetches for a build (git contexts) obeys the rules the workers apply to
  // RUN steps and ADD <url>: the same config gives the same lists (the cluster's services, this
  // host's addresses and the tenant's lists included).
  const sandbox = await sandboxOptions(config);
  const egress = sandbox.executor.egress || {};
  const egressRules = new EgressRules({ protect: [...(egress.protect ?? []), ...(egress.pool ? [egress.pool] : [])], deny: egress.deny ?? [], allow: egress.allow ?? [], denyPrivate: egress.denyPrivate ?? false });
  const sourcePolicy = (tenant: string) => egressRules.forTenant(sandbox.tenantEgress(tenant)).refuse;
  const frontend = new Frontend({
    sourcePolicy,
    fetchLimits: { connectTimeoutMs: config.limits.fetchConnectTimeoutMs, idleTimeoutMs: config.limits.fetchIdleTimeoutMs },
    redis, keys, log, scheduler, workers, tokens, version,
    sharedDir: config.sharedDir || `${config.stateDir}/shared`,
    stateDir: config.stateDir,
    blobStore: config.blobStore,
    secretsKey: config.auth.secretsKey,
    insecureRegistries: config.registry.insecure,
    trustedRegistries: config.registry.trusted,
    tenantScopedRegistries: config.registry.tenantScoped,
    sharedReadOnlyRepositories: config.registry.sharedReadOnly,
    buildPlatform: formatPlatform(hostPlatform()),
    maxContextBytes: config.limits.maxContextBytes,
    maxContextFiles: config.limits.maxContextFiles,
    maxExportBytes: config.limits.maxExportBytes,
    sessionIdleTimeoutMs: config.limits.sessionIdleTimeoutMs,
    maxLogBytesPerStep: config.limits.maxLogBytesPerStep,
    entitlements: config.auth.entitlements,
    historyRetentionMs: config.history.retentionMs,
    contextMaxAgeMs: config.gc.contextMaxAgeMs,
  });
  const credentials = config.frontend.tlsCert
    ? ServerCredentials.createSsl(
        config.frontend.tlsClientCa ? readFileSync(config.frontend.tlsClientCa) : null,
        [{ cert_chain: readFileSync(config.frontend.tlsCert), private_key: readFileSync(config.frontend.tlsKey) }],
        Boolean(config.frontend.tlsClientCa))
    : ServerCredentials.createInsecure();
  const port = await frontend.listen(config.frontend.listen, credentials);
  const host = config.frontend.listen.replace(/:\d+$/, '');
  announce.info({ frontend: `${config.frontend.tlsCert ? 'tls' : 'tcp'}://${host}:${port}`, version }, 'buildyardd listening');
  let buildkitEndpoint: BuildkitServer | undefined;
  if (config.buildkit.listen) {
    const bk = config.buildkit;
    const tenants = new Set(tokens.values());
    buildkitEndpoint = new BuildkitServer({ frontend, redis, keys, workers, tenant: bk.insecure ? bk.tenant : undefined, tenants, version, log });
    let bkPort: number;
    if (bk.tlsCert && bk.tlsKey && bk.tlsClientCa) {
      bkPort = await buildkitEndpoint.listenTls(bk.listen, { cert: readFileSync(bk.tlsCert), key: readFileSync(bk.tlsKey), clientCa: readFileSync(bk.tlsClientCa) });
    } else {
      if (!bk.insecure) throw new Error('buildkit.listen needs buildkit.tlsCert, tlsKey and tlsClientCa, or buildkit.insecure=true on a loopback address');
      if (!tenants.has(bk.tenant)) throw new Error(`buildkit.tenant "${bk.tenant.slice(0, 64)}" is not a tenant of auth.tokens: name the tenant the plain-text BuildKit endpoint builds as`);
      bkPort = await buildkitEndpoint.listenInsecure(bk.listen);
    }
    announce.info({ buildkit: `tcp://${bk.listen.replace(/:\d+$/, '')}:${bkPort}`, tls: Boolean(bk.tlsCert) }, 'buildkit endpoint listening');
  }

  if (config.frontend.healthListen) {
    const { url } = await startHealthServer({
      listen: config.frontend.healthListen, setting: 'frontend.healthListen', metricsToken: config.telemetry.metricsToken,
      ready: () => redis.ping().then(() => true), notReadyMessage: 'redis unreachable',
      onMetricsError: (err) => log.warn({ err: err.message }, 'serving /metrics failed'),
    });
    announce.info({ health: url }, 'buildyardd health listening'); // metrics: say where /metrics is (port 0 in tests)
  }

  const gcTimer = setInterval(() => {
    frontend.collectGarbage({ keepBytes: config.gc.keepStorageBytes, keepDurationMs: config.gc.keepDurationMs })
      .then((r) => { if (r.deleted > 0) log.info(r, 'blob gc'); })
      .catch((err: Error) => log.error({ err: err.message }, 'blob gc failed'));
  }, config.gc.intervalMs);
  gcTimer.unref();

  const stop = async () => {
    clearInterval(gcTimer);
    // At once: the frontend hands its builds (BuildKit's too) over while a BuildKit client that
    // holds a call open gets its grace, instead of the handoff waiting behind it.
    await Promise.all([buildkitEndpoint?.close(), frontend.close()]);
    await scheduler.close();
    await telemetry.shutdown();
    redis.disconnect();
  };
  // A failed step of the stop still ends the process (it would linger, serving nothing).
  const shutdown = () => stop().then(() => process.exit(0), (err: Error) => {
    log.error({ err: err.message }, 'stopping failed');
    process.exit(1);
  });
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}

main().catch((err: Error) => {
  console.error(`buildyardd: ${err.message}`);
  process.exit(1);
});
