// 10. Client start-up: `buildyard --version`, `--help`, and the time from spawning
// `buildyard build` to the first byte it sends a builder (a loopback TCP listener that only
// records when the first byte arrives), against BuildKit's `buildctl --version` and `buildctl
// build`'s first byte to the same kind of listener. Runs alternate between the two clients, so a
// load change on the shared machine hits both sides of a ratio alike.
// Each row runs the `buildyard` command as npm installs it (bin/buildyard, a shell script that
// starts node on bin/buildyard.js). NODE_EXTRA_CA_CERTS is unset for the runs, so the rows compare
// across machines; when the environment sets it, one more row reports --version with it (Node 20
// would parse that bundle before any JavaScript runs; bin/buildyard defers it to the first TLS
// connection, see apps/cli/bin/extraCaCerts.js).
import { spawn } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { referenceTools } from '@buildyard/testkit';
import { lowerIsBetter, type Benchmark, type Measurement } from '../lib/Measurement.js';
import { runCommand } from '../lib/runCommand.js';
import { median } from '../lib/stats.js';

const cliDir = resolve(import.meta.dirname, '../../../apps/cli');
const bin = join(cliDir, 'bin/buildyard');
const bundle = join(cliDir, 'dist/buildyard.cjs');

/** The newest modification time under a directory (sources of the bundle). */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return newest;
}

/** Wall time of one run to exit, stdout discarded. */
function timeToExit(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done, reject) => {
    const start = performance.now();
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    child.on('error', reject);
    child.on('exit', (code) => code === 0 ? done(performance.now() - start) : reject(new Error(`${command} ${args.join(' ')} exited with ${code}: ${err.trim().split('\n').pop()}`)));
  });
}

/**
 * Spawns the client and resolves with the time until `server` receives its first byte; the
 * client is then killed (nothing answers it). A client that exits first rejects.
 */
function timeToFirstByte(server: Server, command: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((done, reject) => {
    const start = performance.now();
    let settled = false;
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err = (err + d.toString()).slice(-2000); });
    const onConnection = (socket: Socket) => {
      socket.once('data', () => {
        const ms = performance.now() - start;
        socket.destroy();
        if (settled) return;
        settled = true;
        server.off('connection', onConnection);
        child.kill('SIGKILL');
        done(ms);
      });
      socket.on('error', () => undefined);
    };
    server.on('connection', onConnection);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      server.off('connection', onConnection);
      reject(new Error(`${command} ${args[0]} ... exited (${code ?? signal}) before sending a byte: ${err.trim().split('\n').pop()}`));
    });
  });
}

export const startupBenchmark: Benchmark = {
  name: 'startup',
  title: 'client start-up: buildyard --version/--help and first byte of a build vs buildctl',
  async run(ctx) {
    const { paths, missing } = referenceTools('buildctl');
    if (missing) throw new Error(missing);
    const buildctl = paths.buildctl;
    // What users run is the bundle behind bin/buildyard; rebuild it when its sources moved on.
    if (!existsSync(bundle) || statSync(bundle).mtimeMs < newestMtime(join(cliDir, 'src'))) {
      ctx.log('bundling apps/cli (dist/buildyard.cjs is missing or older than apps/cli/src)');
      await runCommand(process.execPath, [join(cliDir, 'scripts/bundle.mjs')], { cwd: cliDir });
    }
    const samples = ctx.quick ? 9 : 21;
    const work = await mkdtemp(join(tmpdir(), 'buildyard-bench-startup-'));
    const server = createServer();
    try {
      // A one-file context; no builders.json, docker config or hash cache from the user's home.
      const context = join(work, 'context');
      for (const dir of [context, join(work, 'config'), join(work, 'cache')]) await mkdir(dir, { recursive: true });
      await writeFile(join(context, 'Dockerfile'), 'FROM scratch\nCOPY a /a\n');
      await writeFile(join(context, 'a'), 'a\n');
      const { NODE_EXTRA_CA_CERTS: extraCaCerts, ...inherited } = process.env;
      const env: NodeJS.ProcessEnv = {
        ...inherited, XDG_CONFIG_HOME: join(work, 'config'), XDG_CACHE_HOME: join(work, 'cache'), BUILDYARD_CACHE_DIR: join(work, 'cache'), DOCKER_CONFIG: join(work, 'config'), HOME: work,
        BUILDYARD_BUILDER: '', BUILDYARD_TOKEN: '', OTEL_TRACES_EXPORTER: '', OTEL_EXPORTER_OTLP_ENDPOINT: '', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
      };
      await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
      const addr = `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`;

      const runs = {
        node: () => timeToExit(process.execPath, ['-e', '0'], env),
        version: () => timeToExit(bin, ['--version'], env),
        help: () => timeToExit(bin, ['--help'], env),
        ttfb: () => timeToFirstByte(server, bin, ['build', '--builder', addr, '--progress', 'plain', context], env),
        ctlVersion: () => timeToExit(buildctl, ['--version'], env),
        ctlTtfb: () => timeToFirstByte(server, buildctl, ['--addr', addr, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${context}`, '--local', `dockerfile=${context}`], env),
        ...(extraCaCerts ? { versionCa: () => timeToExit(bin, ['--version'], { ...env, NODE_EXTRA_CA_CERTS: extraCaCerts }) } : {}),
      };
      // A build that ends (port 1 refuses it) writes the code caches on exit, as a user's previous
      // build did; the timed builds are killed at their first byte and write none.
      await new Promise<void>((done, reject) => {
        const child = spawn(bin, ['build', '--builder', 'tcp://127.0.0.1:1', '--progress', 'plain', context], { stdio: 'ignore', env });
        child.on('error', reject);
        child.on('exit', (code) => (code === 3 ? done() : reject(new Error(`warm-up build exited ${code}, expected 3 (builder unreachable)`))));
      });
      const times = Object.fromEntries(Object.keys(runs).map((k) => [k, [] as number[]])) as Record<string, number[]>;
      // Two unrecorded rounds warm the page cache and the code cache of the CLI front (bin/codeCache.js; Node 22+: its compile cache).
      for (let i = 0; i < samples + 2; i++) {
        for (const [k, fn] of Object.entries(runs) as [string, () => Promise<number>][]) {
          const ms = await fn();
          if (i >= 2) times[k].push(ms);
        }
      }
      const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<string, number>;
      ctx.log(`medians of ${samples}: node -e 0 ${m.node.toFixed(1)} ms, --version ${m.version.toFixed(1)}, --help ${m.help.toFixed(1)}, build first byte ${m.ttfb.toFixed(1)}; buildctl --version ${m.ctlVersion.toFixed(1)}, buildctl build first byte ${m.ctlTtfb.toFixed(1)}${m.versionCa === undefined ? '' : `; --version with NODE_EXTRA_CA_CERTS ${m.versionCa.toFixed(1)}`}`);
      const note = `median of ${samples}; node -e 0 alone: ${m.node.toFixed(0)} ms (${process.version})`;
      const peer = { peer: m.ctlVersion, peerName: 'buildctl --version' };
      const absolute = (metric: string, value: number, limit: number): Measurement =>
        ({ benchmark: 'startup', metric: `${metric} absolute`, unit: 'ms', buildyard: value, ratio: value / limit, target: `< ${limit} ms`, met: value < limit });
      return [
        lowerIsBetter({ benchmark: 'startup', metric: 'buildyard --version', unit: 'ms', buildyard: m.version, ...peer, note }, 5),
        absolute('buildyard --version', m.version, 60),
        lowerIsBetter({ benchmark: 'startup', metric: 'buildyard --help', unit: 'ms', buildyard: m.help, ...peer, note }, 5),
        absolute('buildyard --help', m.help, 60),
        lowerIsBetter({ benchmark: 'startup', metric: 'build: spawn to first byte sent', unit: 'ms', buildyard: m.ttfb, ...peer, note: `${note}; one-file context, loopback listener` }),
        absolute('build: spawn to first byte sent', m.ttfb, 100),
        lowerIsBetter({ benchmark: 'startup', metric: 'build: first byte vs buildctl build', unit: 'ms', buildyard: m.ttfb, peer: m.ctlTtfb, peerName: 'buildctl build (first byte)', note: 'same listener, same context' }),
        ...(m.versionCa === undefined ? [] : [lowerIsBetter({
          benchmark: 'startup', metric: 'buildyard --version, NODE_EXTRA_CA_CERTS set', unit: 'ms', buildyard: m.versionCa, ...peer, note: `as the environment sets it (${extraCaCerts}); the rows above run without it`,
        })]),
      ];
    } finally {
      await new Promise((ok) => server.close(ok));
      await rm(work, { recursive: true, force: true });
    }
  },
};
