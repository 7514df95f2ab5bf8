// `buildyard build` as a user runs it in the benchmarks: the `buildyard` command (bin/buildyard,
// which starts node on the CLI's bundle, built by `npm run build`), a process per build, in the
// bench's own environment (NODE_EXTRA_CA_CERTS included, where it is set), with config and caches
// of its own under `home`.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Cluster } from '@buildyard/testkit';
import { runCommand } from './runCommand.js';

const cliBin = resolve(import.meta.dirname, '../../../apps/cli/bin/buildyard');

/** Runs `buildyard build ARGS` against `cluster`; `env` adds to the CLI's environment. */
export function cliBuild(cluster: Cluster, home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  if (!existsSync(resolve(cliBin, '../../dist/buildyard.cjs'))) throw new Error(`the CLI bundle is missing beside ${cliBin}: run npm run build first`);
  return runCommand(cliBin, ['build', '--progress', 'plain', ...args], {
    env: { ...process.env, XDG_CONFIG_HOME: join(home, 'config'), XDG_CACHE_HOME: join(home, 'cache'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, ...env },
    timeoutMs: 900_000,
  });
}
