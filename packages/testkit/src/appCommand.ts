// How tests start Buildyard's own programs (the CLI, the frontend, a worker) as child processes.
// By default from their TypeScript sources through tsx, so a test run alone needs no build. The
// test command (`npm test`) builds first and sets BUILDYARD_TEST_BUILT=1: then they start from
// what the build made, the CLI as the bundle users run. That tests what ships, and saves each
// start tsx's loading and transpiling (0.4-0.6 s of CPU per process; a test run starts hundreds).
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type BuildyardApp = 'cli' | 'buildyardd' | 'worker';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
// Resolved here, so a child started in any cwd finds it.
const tsx = import.meta.resolve('tsx');

const sources: Record<BuildyardApp, string> = {
  cli: 'apps/cli/src/main.ts',
  buildyardd: 'apps/buildyardd/src/main.ts',
  worker: 'apps/worker/src/main.ts',
};
const built: Record<BuildyardApp, string> = {
  cli: 'apps/cli/bin/buildyard.js',
  buildyardd: 'apps/buildyardd/dist/main.js',
  worker: 'apps/worker/dist/main.js',
};

/** Node's arguments (without `process.execPath`) that run `app` with `args`. */
export function appCommand(app: BuildyardApp, ...args: string[]): string[] {
  if (process.env.BUILDYARD_TEST_BUILT === '1') return [join(repoRoot, built[app]), ...args];
  return ['--conditions=source', '--import', tsx, join(repoRoot, sources[app]), ...args];
}
