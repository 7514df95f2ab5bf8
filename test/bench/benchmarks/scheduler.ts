// 5. Scheduler: empty stages per second through Scheduler + StageConsumer (no-op handler, real
// Redis, real BullMQ), and submit-to-first-vertex latency with 1 and 2 consumers.
import { startRedis, type RedisService } from '@buildyard/testkit';
import { Scheduler, StageConsumer, type StageSpec } from '@buildyard/scheduler';
import type { Benchmark, Measurement } from '../lib/Measurement.js';
import { percentile, timed } from '../lib/stats.js';

const AMD = 'linux/amd64';
let seq = 0;

async function withFleet<T>(redis: RedisService, consumers: number, capacity: number, fn: (s: Scheduler, started: Map<string, number>) => Promise<T>): Promise<T> {
  const prefix = `bench${process.pid}-${++seq}`;
  // tenantLimit 0: the per-tenant fairness cap would otherwise hold one tenant to 4 stages.
  const scheduler = new Scheduler(redis.url, { prefix, tenantLimit: 0, tickMs: 1000 });
  const started = new Map<string, number>();
  const fleet: StageConsumer[] = [];
  try {
    for (let i = 0; i < consumers; i++) {
      const c = new StageConsumer({
        redis: redis.url, prefix, pollMs: 1000,
        worker: { id: `bench-${i}`, nativePlatforms: [AMD], emulatedPlatforms: [], capacity },
        handler: async (job) => {
          if (!started.has(job.buildId)) started.set(job.buildId, performance.now());
          return null;
        },
      });
      fleet.push(c);
      await c.start();
    }
    return await fn(scheduler, started);
  } finally {
    await Promise.all(fleet.map((c) => c.close()));
    await scheduler.close();
  }
}

const stages = (n: number): StageSpec[] => Array.from({ length: n }, (_, i) => ({ id: `s${i}`, dependsOn: [], cacheKey: '', payload: {} }));

export const schedulerBenchmark: Benchmark = {
  name: 'scheduler',
  title: 'scheduler: empty stages/s and submit-to-first-vertex latency',
  async run(ctx) {
    const redis = await startRedis();
    try {
      const rows: Measurement[] = [];
      const builds = ctx.quick ? 20 : 50;
      const perBuild = 10;
      const throughput = await withFleet(redis, 2, 8, async (scheduler) => {
        const ids = Array.from({ length: builds }, (_, i) => `tput-${i}`);
        const { ms } = await timed(async () => {
          await Promise.all(ids.map((buildId, i) => scheduler.submitBuild({ buildId, tenant: `t${i % 4}`, priority: 0, platforms: [{ platform: AMD, stages: stages(perBuild) }] })));
          const states = await Promise.all(ids.map((id) => scheduler.waitForBuild(id)));
          const bad = states.filter((s) => s.status !== 'done');
          if (bad.length > 0) throw new Error(`${bad.length} benchmark builds ended ${bad[0].status}: ${bad[0].error}`);
        });
        return (builds * perBuild) / (ms / 1000);
      });
      ctx.log(`throughput ${throughput.toFixed(0)} stages/s`);
      rows.push({ benchmark: 'scheduler', metric: `throughput (${builds}x${perBuild} stages, 2 consumers)`, unit: 'stages/s', buildyard: throughput, ratio: throughput / 200, target: '>= 200/s', met: throughput >= 200 });
      for (const consumers of [1, 2]) {
        const samples = ctx.quick ? 30 : 100;
        const latencies = await withFleet(redis, consumers, 2, async (scheduler, started) => {
          const out: number[] = [];
          for (let i = 0; i < samples; i++) {
            const buildId = `lat-${consumers}-${i}`;
            const t0 = performance.now();
            await scheduler.submitBuild({ buildId, tenant: 't', priority: 0, platforms: [{ platform: AMD, stages: stages(1) }] });
            const state = await scheduler.waitForBuild(buildId);
            if (state.status !== 'done') throw new Error(`latency build ${buildId} ended ${state.status}: ${state.error}`);
            out.push(started.get(buildId)! - t0);
          }
          return out;
        });
        const p50 = percentile(latencies, 50);
        const p99 = percentile(latencies, 99);
        ctx.log(`${consumers} consumer(s): latency p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
        rows.push({ benchmark: 'scheduler', metric: `submit-to-first-vertex p50, ${consumers} consumer(s)`, unit: 'ms', buildyard: p50, ratio: p50 / 50, target: '< 50 ms', met: p50 < 50 });
        rows.push({ benchmark: 'scheduler', metric: `submit-to-first-vertex p99, ${consumers} consumer(s)`, unit: 'ms', buildyard: p99, note: `${samples} sequential one-stage builds` });
      }
      return rows;
    } finally {
      await redis.stop();
    }
  },
};
