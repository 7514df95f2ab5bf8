// buildyard-worker: thin wiring of @buildyard/localbuild (run-local) and the fleet consumer.
import { Command, InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { buildLocal } from '@buildyard/localbuild';
import { detectPlatforms } from '@buildyard/executor';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { loadConfig } from '@buildyard/config';
import { FleetWorker, sandboxOptions } from '@buildyard/fleet';
import { redisKeys } from '@buildyard/contracts';
import type { Server } from 'node:http';
import { logUnhandledRejections, processLoggers, startHealthServer, startTelemetry } from '@buildyard/telemetry';

const version = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version as string;

const program = new Command('buildyard-worker')
  .description('Buildyard worker: runs build stages in runc containers')
  .showHelpAfterError();

const collect = (value: string, previous: string[]) => [...previous, value];
const keyValue = (value: string, previous: Record<string, string>) => {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
};

program.command('platforms')
  .description('print the platforms this machine runs natively and through binfmt emulation')
  .action(() => { console.log(JSON.stringify(detectPlatforms())); });

program.command('run-local')
  .description('build a Dockerfile on this machine without Redis and write the result as an OCI layout')
  .argument('<context>', 'build context directory')
  .option('-f, --file <path>', 'Dockerfile (default: <context>/Dockerfile)')
  .option('--platform <list>', 'target platforms, comma separated', '')
  .option('--build-arg <KEY=VALUE>', 'build-time variable (repeatable)', keyValue, {})
  .option('--target <stage>', 'build only up to this stage')
  .option('--secret <id=path>', 'secret file for RUN --mount=type=secret (repeatable)', collect, [])
  .option('--no-cache', 'do not use cached results')
  .requiredOption('-o, --output <dir>', 'OCI layout directory to write')
  .option('-t, --tag <tag>', 'tag recorded in the layout', 'latest')
  .option('--state-dir <dir>', 'worker state (snapshots, blobs, cache)', '/var/lib/buildyard/local')
  .option('--insecure-registry <host:port>', 'registry reached over plain http (repeatable)', collect, [])
  .option('--compression <gzip|zstd>', 'layer compression', 'gzip')
  .action(async (context: string, o) => {
    const { readFile } = await import('node:fs/promises');
    const secrets = new Map<string, Buffer>();
    for (const s of o.secret as string[]) {
      const [id, path] = s.split('=');
      if (!id || !path) throw new InvalidArgumentError(`--secret expects id=path, got "${s}"`);
      secrets.set(id, await readFile(path));
    }
    const platforms = (o.platform as string).split(',').filter(Boolean);
    const started = Date.now();
    const result = await buildLocal({
      contextDir: resolve(context),
      dockerfile: o.file ? resolve(o.file) : undefined,
      platforms: platforms.length > 0 ? platforms : [detectPlatforms().native[0]],
      buildArgs: o.buildArg, target: o.target, secrets, noCache: o.cache === false,
      stateDir: resolve(o.stateDir), ociLayoutDir: resolve(o.output), tag: o.tag,
      insecureRegistries: o.insecureRegistry, compression: o.compression,
      sourceDateEpoch: process.env.SOURCE_DATE_EPOCH ? Number(process.env.SOURCE_DATE_EPOCH) : undefined,
      events: {
        vertex: (v) => {
          if (v.state === 'cached') console.error(`#  CACHED ${v.name}`);
          else if (v.state === 'started') console.error(`#  ${v.name}`);
          else if (v.state === 'completed') console.error(`#  DONE ${(v.durationMs! / 1000).toFixed(1)}s ${v.name}`);
          else console.error(`#  ERROR ${v.name}: ${v.error}`);
        },
        log: (_digest, _stream, data) => { process.stderr.write(data); },
      },
    });
    console.error(`built ${result.images.map((i) => i.platform).join(', ')} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    console.log(result.digest);
  });

program.command('serve', { isDefault: true })
  .description('join the fleet: take stage jobs for this machine\'s platforms from Redis (config from BUILDYARD_* env or BUILDYARD_CONFIG)')
  .action(async () => {
    const telemetry = startTelemetry('buildyard-worker');
    const config = loadConfig();
    const { log, announce } = processLoggers('buildyard-worker', config.log.level);
    logUnhandledRejections(log);
    const sandbox = await sandboxOptions(config);
    const worker = new FleetWorker({
      executor: sandbox.executor,
      tenantEgress: sandbox.tenantEgress,
      tenantLimits: sandbox.tenantLimits,
      id: config.worker.id || `${hostname()}-${process.pid}`,
      redisUrl: config.redis.url,
      redisCluster: config.redis.cluster,
      keys: redisKeys(config.redis.keyPrefix),
      stateDir: config.stateDir,
      sharedDir: config.sharedDir || `${config.stateDir}/shared`,
      secretsKey: config.auth.secretsKey,
      blobStore: config.blobStore,
      capacity: config.worker.capacity,
      platforms: config.worker.platforms,
      compression: config.worker.compression,
      insecureRegistries: config.registry.insecure,
      trustedRegistries: config.registry.trusted,
      stepTimeoutMs: config.limits.stepTimeoutMs,
      fetch: { connectTimeoutMs: config.limits.fetchConnectTimeoutMs, idleTimeoutMs: config.limits.fetchIdleTimeoutMs },
      keepStorageBytes: config.worker.keepStorageBytes,
      gcIntervalMs: config.gc.intervalMs,
      maxLogBytesPerStep: config.limits.maxLogBytesPerStep,
      heartbeatMs: config.heartbeat.intervalMs,
      heartbeatTtlMs: config.heartbeat.timeoutMs,
      lockDurationMs: Math.max(config.heartbeat.timeoutMs, 3_000),
      stalledIntervalMs: Math.max(Math.floor(config.heartbeat.timeoutMs / 2), 1_000),
      version,
      onError: (err) => log.error({ err: err.message }, 'worker error'),
      outageLog: log,
      onLostWakeUp: (detail) => log.warn(detail, 'a stage waited for the safety poll: its wake-up was lost'),
    });
    await worker.start();
    // /healthz and Prometheus /metrics (stage durations, cache hits/misses, bytes pulled) on worker.healthListen.
    let health: Server | undefined;
    if (config.worker.healthListen) {
      const started = await startHealthServer({
        listen: config.worker.healthListen, setting: 'worker.healthListen', metricsToken: config.telemetry.metricsToken,
        onMetricsError: (err) => log.warn({ err: err.message }, 'serving /metrics failed'),
      });
      health = started.server;
      announce.info({ health: started.url }, 'buildyard-worker health listening');
    }
    announce.info({ native: worker.platforms.native, emulated: worker.platforms.emulated }, 'buildyard-worker ready');
    const stop = async () => { health?.close(); await worker.close(); await telemetry.shutdown(); process.exit(0); };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });

program.parseAsync().catch((err: Error) => {
  console.error(`error: ${err.message}`);
  process.exit(1);
});
