// `buildyard up` / `buildyard down`: thin wiring of the local cluster in @buildyard/client.
import type { Command } from 'commander';

// The cluster code (hostkit, PKI generation) loads only when up or down runs.
const cluster = () => import('./load/cluster.js');

const DEFAULT_STATE_DIR = '/var/lib/buildyard/cluster';

export function registerUpCommands(program: Command): void {
  program.command('up')
    .description('start an all-in-one local cluster (Redis, registry, frontend, workers, dashboard) in the background and make it the current builder')
    .option('--workers <n>', 'number of workers', (v) => Number(v), 2)
    .option('--state-dir <dir>', 'directory holding all of the cluster\'s state', DEFAULT_STATE_DIR)
    .option('--json', 'print the endpoints as JSON')
    .action(async (o: { workers: number; stateDir: string; json?: boolean }) => {
      if (!Number.isInteger(o.workers) || o.workers < 1) throw new Error(`--workers must be a positive integer, got ${o.workers}`);
      const { startLocalCluster } = await cluster();
      const info = await startLocalCluster({ stateDir: o.stateDir, workers: o.workers, onStep: o.json ? undefined : (m) => process.stderr.write(`=> ${m}\n`) });
      if (o.json) {
        console.log(JSON.stringify({ frontend: info.frontend, registry: info.registry, dashboard: info.dashboard, dashboardUrl: info.dashboardUrl, redis: info.redis.replace(/\/\/:[^@]*@/, '//'), redisPasswordFile: `${info.stateDir}/redis-password`, builder: info.builder, stateDir: info.stateDir, workers: info.workers, buildkit: info.buildkit }));
        return;
      }
      console.log(`frontend   ${info.frontend}  (builder "${info.builder}", now the default)`);
      console.log(`registry   ${info.registry}`);
      console.log(`dashboard  ${info.dashboardUrl}`);
      console.log(`workers    ${info.workers}`);
      if (info.buildkit) {
        const { addr, cacert, cert, key } = info.buildkit;
        console.log(`buildkit   ${addr}  (docker buildx create --driver remote --driver-opt cacert=${cacert},cert=${cert},key=${key} ${addr})`);
      }
      console.log('stop it with: buildyard down' + (o.stateDir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${o.stateDir}`));
    });

  program.command('down')
    .description('stop the local cluster started by `buildyard up` and remove its mounts')
    .option('--state-dir <dir>', 'the state directory given to up', DEFAULT_STATE_DIR)
    .action(async (o: { stateDir: string }) => {
      const { stopLocalCluster } = await cluster();
      const { stopped } = await stopLocalCluster(o.stateDir);
      console.log(stopped.length > 0 ? `stopped ${stopped.join(', ')}` : 'no local cluster was running');
    });
}
