// 8. Memory: peak RSS (VmHWM) of the frontend and a worker while 50 small builds run at once,
// and of the CLI (the bundle users run) building from a 2 GiB context (issue 18's goal).
import { randomBytes } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Cluster } from '@buildyard/testkit';
import { cliBuild } from '../lib/cli.js';
import { generateContext } from '../lib/generateContext.js';
import type { Benchmark, Measurement } from '../lib/Measurement.js';
import { memoryOf, supervisedPid } from '../lib/processMemory.js';
import { build, withCluster } from '../lib/solve.js';
import { timed } from '../lib/stats.js';

const MiB = 1024 ** 2;
const reportPeakRss = resolve(import.meta.dirname, '../lib/reportPeakRss.mjs');

/**
 * `buildyard build` of a context of `bytes`: 2,000 files of 10 KB and one large file (sparse
 * here, read and sent whole). Answers the CLI's peak RSS in bytes and the build's time.
 */
async function cliPeakRss(cluster: Cluster, work: string, bytes: number): Promise<{ peak: number; ms: number }> {
  const ctx = join(work, 'big-context');
  await generateContext(ctx, 2_000, 20 * MiB);
  await writeFile(join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY d0000 /d0000\n');
  await writeFile(join(ctx, 'large.bin'), '');
  await truncate(join(ctx, 'large.bin'), bytes - 20 * MiB);
  const peakFile = join(work, 'cli-peak-rss');
  const { ms } = await timed(() => cliBuild(cluster, join(work, 'cli-home'), [ctx], { NODE_OPTIONS: `--import ${reportPeakRss}`, BENCH_PEAK_RSS_FILE: peakFile }));
  return { peak: Number(await readFile(peakFile, 'utf8')) * 1024, ms };
}

export const memoryBenchmark: Benchmark = {
  name: 'memory',
  title: 'peak RSS of frontend and workers during concurrent builds',
  async run(ctx) {
    return withCluster('memory', { workers: 2 }, async (cluster, work) => {
      await writeFile(join(work, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nARG SALT\nRUN echo "$SALT" > /salt\nCOPY Dockerfile /\n`);
      const frontendPid = supervisedPid(cluster.frontendProcess);
      const workerPids = cluster.workers.map((w) => supervisedPid(w.process));
      const idle = memoryOf(frontendPid);
      const concurrent = ctx.quick ? 20 : 50;
      const { ms } = await timed(() => Promise.all(Array.from({ length: concurrent }, () =>
        build(cluster, work, { buildArgs: { SALT: randomBytes(8).toString('hex') } }))));
      const frontend = memoryOf(frontendPid);
      const workers = workerPids.map(memoryOf);
      const worstWorker = Math.max(...workers.map((w) => w.peak));
      const contextBytes = (ctx.quick ? 0.25 : 2) * 1024 * MiB;
      const cli = await cliPeakRss(cluster, work, contextBytes);
      const contextLabel = ctx.quick ? '256 MiB' : '2 GiB';
      ctx.log(`CLI peak ${(cli.peak / MiB).toFixed(0)} MiB building from a ${contextLabel} context (${(cli.ms / 1000).toFixed(1)} s)`);
      ctx.log(`${concurrent} builds in ${ms.toFixed(0)} ms; frontend peak ${(frontend.peak / MiB).toFixed(0)} MiB (idle ${(idle.peak / MiB).toFixed(0)}), workers ${workers.map((w) => (w.peak / MiB).toFixed(0)).join(', ')} MiB`);
      const rows: Measurement[] = [
        { benchmark: 'memory', metric: `frontend peak RSS, ${concurrent} concurrent builds`, unit: 'MiB', buildyard: frontend.peak / MiB, ratio: frontend.peak / (300 * MiB), target: '< 300 MB', met: frontend.peak < 300 * 1e6, note: `${(idle.peak / MiB).toFixed(0)} MiB after start-up; builds took ${(ms / 1000).toFixed(1)} s` },
        { benchmark: 'memory', metric: `worker peak RSS (largest of ${workers.length})`, unit: 'MiB', buildyard: worstWorker / MiB, note: 'reported, no target' },
        { benchmark: 'memory', metric: `CLI peak RSS, ${contextLabel} context`, unit: 'MiB', buildyard: cli.peak / MiB, ratio: cli.peak / (150 * MiB), target: '< 150 MB', met: cli.peak < 150 * 1e6, note: `2,000 files of 10 KB and one large file; the build took ${(cli.ms / 1000).toFixed(1)} s` },
      ];
      return rows;
    });
  },
};
