// 8. Memory: peak RSS (VmHWM) of the frontend and a worker while 50 small builds run at once.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Benchmark, Measurement } from '../lib/Measurement.js';
import { memoryOf, supervisedPid } from '../lib/processMemory.js';
import { build, withCluster } from '../lib/solve.js';
import { timed } from '../lib/stats.js';

const MiB = 1024 ** 2;

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
      ctx.log(`${concurrent} builds in ${ms.toFixed(0)} ms; frontend peak ${(frontend.peak / MiB).toFixed(0)} MiB (idle ${(idle.peak / MiB).toFixed(0)}), workers ${workers.map((w) => (w.peak / MiB).toFixed(0)).join(', ')} MiB`);
      const rows: Measurement[] = [
        { benchmark: 'memory', metric: `frontend peak RSS, ${concurrent} concurrent builds`, unit: 'MiB', buildyard: frontend.peak / MiB, ratio: frontend.peak / (300 * MiB), target: '< 300 MB', met: frontend.peak < 300 * 1e6, note: `${(idle.peak / MiB).toFixed(0)} MiB after start-up; builds took ${(ms / 1000).toFixed(1)} s` },
        { benchmark: 'memory', metric: `worker peak RSS (largest of ${workers.length})`, unit: 'MiB', buildyard: worstWorker / MiB, note: 'reported, no target' },
      ];
      return rows;
    });
  },
};
