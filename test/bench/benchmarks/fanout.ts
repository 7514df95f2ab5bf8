// 6. Fan-out: 4 independent CPU-bound stages on 1 vs 2 workers. The cluster starts with one
// worker and gets a second through addWorker.
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { higherIsBetter, type Benchmark, type Measurement } from '../lib/Measurement.js';
import { build, stageSpans, withCluster } from '../lib/solve.js';
import { median, timed } from '../lib/stats.js';

/** A busybox-sh busy loop: fixed CPU work, about 2 µs per iteration natively. */
export const loop = (n: number) => `i=0; while [ $i -lt ${n} ]; do i=$((i + 1)); done`;

function fanoutDockerfile(base: string, iterations: number): string {
  const stages = ['a', 'b', 'c', 'd'].map((s) => `FROM ${base} AS ${s}\nARG SALT\nRUN echo "$SALT" > /salt-${s} && ${loop(iterations)}\n`).join('\n');
  return `${stages}\nFROM ${base}\n${['a', 'b', 'c', 'd'].map((s) => `COPY --from=${s} /salt-${s} /`).join('\n')}\n`;
}

export const fanoutBenchmark: Benchmark = {
  name: 'fanout',
  title: 'fan-out of 4 independent stages on 1 vs 2 workers',
  async run(ctx) {
    // Capacity 1: a worker stands for one machine's worth of build slots, so a second worker is
    // what adds parallelism (with the default capacity 2 one worker already fills both cores).
    return withCluster('fanout', { workers: 1, env: { BUILDYARD_WORKER_CAPACITY: '1' } }, async (cluster, work) => {
      const iterations = ctx.quick ? 300_000 : 600_000;
      const samples = ctx.quick ? 1 : 2;
      const fanCtx = join(work, 'fanout');
      await mkdir(fanCtx);
      await writeFile(join(fanCtx, 'Dockerfile'), fanoutDockerfile(cluster.busybox.reference, iterations));
      const salted = () => ({ buildArgs: { SALT: randomBytes(8).toString('hex') } });
      const measure = async (label: string) => {
        await build(cluster, fanCtx, salted()); // warm-up: every worker pulls the base image once
        const runs: number[] = [];
        let workersUsed = 0;
        const serial: number[] = [];
        for (let i = 0; i < samples; i++) {
          const t0 = Date.now();
          const r = await timed(() => build(cluster, fanCtx, salted()));
          runs.push(r.ms);
          const spans = stageSpans(r.value);
          workersUsed = new Set([...spans.values()].flatMap((s) => [...s.workers])).size;
          // The serial part around the 4 parallel stages: before the first starts, after the last ends.
          const fan = ['a', 'b', 'c', 'd'].map((id) => spans.get(id)).filter((s) => s !== undefined);
          const head = Math.min(...fan.map((s) => s.start)) - t0;
          const tail = t0 + r.ms - Math.max(...fan.map((s) => s.end));
          serial.push(head + tail);
        }
        ctx.log(`fan-out on ${label}: ${runs.map((x) => x.toFixed(0)).join(',')} ms, ${workersUsed} worker(s) used, serial head+tail ${serial.map((x) => x.toFixed(0)).join(',')} ms`);
        return { ms: median(runs), workersUsed, serial: median(serial) };
      };
      const one = await measure('1 worker');
      await cluster.addWorker();
      const two = await measure('2 workers');
      const rows: Measurement[] = [
        higherIsBetter({ benchmark: 'fanout', metric: 'speed-up of 4 CPU-bound stages, 2 workers vs 1', unit: 'x', buildyard: one.ms / two.ms, peer: 1, peerName: '1 worker', target: '>= 1.8x', note: `1 worker ${one.ms.toFixed(0)} ms, 2 workers ${two.ms.toFixed(0)} ms (${two.workersUsed} used), serial part ${two.serial.toFixed(0)} ms; capacity 1 each, 2 cores` }, 1.8),
      ];

      return rows;
    });
  },
};

