// 9. Scale: the scheduler's cost per stage as the fleet grows (issue 22). One Scheduler in this
// process, N no-op StageConsumers spread over 2 child processes at every N (scaleChild.ts), a
// real redis-server, 10 tenants, tenant limit off. Per N: the Scheduler's idle Redis commands
// alone, then the fleet's idle commands per worker per second (the Scheduler's taken out)
// and connections per worker, sequential one-stage builds for submit→handler latency on the
// settled fleet, then two workloads (independent stages, chains) for stages/s and Redis commands
// per stage (INFO commandstats deltas; the chain workload three times, the median round kept),
// at N >= 1000 also a backlog of 10,000 stages submitted at once (the issue's "no growth in
// per-stage cost"), then the latency again. N defaults to 2,10,50,200,1000 (quick: 2,10,50);
// BENCH_SCALE_N=2,50 picks others.
import { fork, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis } from '@buildyard/testkit';
import { Scheduler, type StageSpec } from '@buildyard/scheduler';
import type { Benchmark, Measurement } from '../lib/Measurement.js';
import { percentile } from '../lib/stats.js';

const AMD = 'linux/amd64';
const CHILD = fileURLToPath(new URL('./scaleChild.ts', import.meta.url));
const CAPACITY = 2;
const TENANTS = 10;
/**
 * Fleet processes at every N (BENCH_SCALE_PROCS to change; an N = 2 fleet has at most 2). The
 * same count at every N keeps the comparison to N's: on this 2-core machine each further busy
 * process makes every cross-process round trip dearer (a sleeping receiver woken per message),
 * which is the simulation's cost, not the scheduler's. With up to 4 processes, N = 200's chain
 * ran at 0.63-0.76x of N = 2 where 2 processes gave 0.75-0.93x in the same hour.
 */
const FLEET_PROCESSES = Number(process.env.BENCH_SCALE_PROCS ?? 2);
/** The bench's own reads (build event streams, INFO): not the scheduler's cost. */
const OWN_COMMANDS = new Set(['xread', 'info']);

interface Fleet {
  children: ChildProcess[];
  latency: Map<string, (at: number) => void>;
  close(): Promise<number>;
}

async function startFleet(redisUrl: string, prefix: string, n: number, log: (m: string) => void): Promise<Fleet> {
  const procs = Math.min(n, FLEET_PROCESSES);
  const latency = new Map<string, (at: number) => void>();
  const children: ChildProcess[] = [];
  const ready: Promise<void>[] = [];
  let first = 0;
  for (let p = 0; p < procs; p++) {
    const count = Math.floor(n / procs) + (p < n % procs ? 1 : 0);
    // Inherits this process's execArgv (--conditions=source --import tsx), so the child runs TS sources.
    const child = fork(CHILD, [redisUrl, prefix, String(first), String(count), String(CAPACITY)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    first += count;
    children.push(child);
    ready.push(new Promise((resolve, reject) => {
      child.on('message', (m: { ready?: boolean; lat?: string; at?: number }) => {
        if (m.ready) resolve();
        if (m.lat) latency.get(m.lat)?.(m.at!);
      });
      child.once('exit', (code) => reject(new Error(`fleet process ${p} exited with ${code} before it was ready`)));
    }));
  }
  await Promise.all(ready);
  return {
    children, latency,
    async close() {
      let errors = 0;
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        c.on('message', (m: { closed?: boolean; errors?: number; firstError?: string; lostWakeUps?: number; firstLost?: string }) => {
          if (!m.closed) return;
          errors += m.errors ?? 0;
          if (m.errors) log(`fleet process reported ${m.errors} consumer errors, first: ${m.firstError}`);
          if (m.lostWakeUps) log(`fleet process reported ${m.lostWakeUps} jobs found only by a safety poll (lost wake-ups), first: ${m.firstLost}`);
        });
        c.once('exit', () => resolve());
        c.send({ close: true });
      })));
      return errors;
    },
  };
}

async function commandCalls(info: Redis): Promise<number> {
  let total = 0;
  for (const [cmd, calls] of await commandBreakdown(info)) if (!OWN_COMMANDS.has(cmd.split('|')[0])) total += calls;
  return total;
}

/**
 * Calls per command. BENCH_SCALE_CMDS=1 logs each workload's commands per stage by command: counts
 * that do not move with the machine's load (e.g. RPOPLPUSH: BullMQ's moveToActive, one per look
 * at a queue; PUBLISH: wake-ups sent).
 */
async function commandBreakdown(info: Redis): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await info.info('commandstats')).split('\n')) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line.trim());
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/**
 * CPU time used so far (ms): Redis's own (INFO cpu), and that of this process (the Scheduler) with
 * the fleet's processes (/proc, Linux). Per stage, the first shows whether Redis's work per stage
 * grows with N; the second what the simulated fleet costs the shared cores.
 */
async function cpuMs(info: Redis, fleet: Fleet): Promise<{ redis: number; processes: number }> {
  const text = await info.info('cpu');
  const field = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(text)![1]);
  const own = process.cpuUsage();
  let processes = (own.user + own.system) / 1000;
  for (const child of fleet.children) {
    // utime and stime, fields 14 and 15, in clock ticks (100 per second); the name may hold spaces.
    const stat = await readFile(`/proc/${child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    processes += (Number(fields[11]) + Number(fields[12])) * 10;
  }
  return { redis: (field('used_cpu_user') + field('used_cpu_sys')) * 1000, processes };
}

async function connectedClients(info: Redis): Promise<number> {
  return Number(/connected_clients:(\d+)/.exec(await info.info('clients'))![1]);
}

/** Follows the event streams of many builds on one connection until each ends; throws if one did not succeed. */
async function waitBuilds(conn: Redis, scheduler: Scheduler, ids: string[]): Promise<void> {
  const last = new Map(ids.map((id) => [scheduler.keys.buildEvents(id), '0']));
  const idOf = new Map(ids.map((id) => [scheduler.keys.buildEvents(id), id]));
  let quietSince = performance.now();
  while (last.size > 0) {
    const keys = [...last.keys()];
    const res = (await conn.xread('COUNT', 1000, 'BLOCK', 2000, 'STREAMS', ...keys, ...keys.map((k) => last.get(k)!))) as
      Array<[string, Array<[string, string[]]>]> | null;
    if (!res) {
      if (performance.now() - quietSince > 180_000) throw new Error(`${last.size} builds made no progress for 3 minutes (e.g. ${idOf.get(keys[0])})`);
      continue;
    }
    quietSince = performance.now();
    for (const [key, entries] of res) {
      for (const [id, flat] of entries) {
        last.set(key, id);
        const type = flat[flat.indexOf('type') + 1];
        if (!type.startsWith('build-')) continue;
        if (type !== 'build-done') throw new Error(`build ${idOf.get(key)} ended ${type}: ${flat[flat.indexOf('error') + 1] ?? ''}`);
        last.delete(key);
        break;
      }
    }
  }
}

const independent = (n: number): StageSpec[] => Array.from({ length: n }, (_, i) => ({ id: `s${i}`, dependsOn: [], cacheKey: '', payload: {} }));
const chain = (n: number): StageSpec[] => Array.from({ length: n }, (_, i) => ({ id: `s${i}`, dependsOn: i === 0 ? [] : [`s${i - 1}`], cacheKey: '', payload: {} }));

interface Workload {
  stagesPerSec: number;
  cmdsPerStage: number;
  /** CPU per stage (µs): Redis's, and the Scheduler's and fleet's processes' (see cpuMs). */
  redisCpuUsPerStage: number;
  processCpuUsPerStage: number;
}

interface ScaleResult {
  n: number;
  /** The fleet's idle commands per worker per second, the Scheduler's own taken out. */
  idleCmdsPerWorkerSec: number;
  schedulerIdleCmdsPerSec: number;
  connsPerWorker: number;
  indep: Workload;
  chain: Workload;
  backlog?: Workload;
  /** Submit→handler on the settled fleet, before the workloads, and after them. */
  settled: { p50: number; p99: number };
  after: { p50: number; p99: number };
}

export const scaleBenchmark: Benchmark = {
  name: 'scale',
  title: 'scale: scheduler cost per stage with a simulated fleet of N no-op workers',
  async run(ctx) {
    const ns = (process.env.BENCH_SCALE_N ?? (ctx.quick ? '2,10,50' : '2,10,50,200,1000')).split(',').map(Number).filter((n) => n > 0);
    const sizes = ctx.quick
      ? { indepBuilds: 50, chainBuilds: 15, chainRounds: 1, latency: 15, idleMs: 3000 }
      : { indepBuilds: 200, chainBuilds: 50, chainRounds: 3, latency: 30, idleMs: 6000 };
    const redis = await startRedis();
    const info = new Redis(redis.url);
    const waiter = new Redis(redis.url);
    const results: ScaleResult[] = [];
    try {
      for (const n of ns) {
        const prefix = `scale${n}`;
        const scheduler = new Scheduler(redis.url, { prefix, tenantLimit: 0 });
        // Its connection opens asynchronously: counted in the baseline, not as the fleet's.
        await scheduler.getBuild('none');
        const base = await connectedClients(info);
        // The Scheduler's own idle commands (its tick: dead and draining workers, lost claims, a
        // claim), a fixed cost of the frontend whatever N: counted alone before the fleet starts,
        // then taken out of the fleet's idle cost per worker (at N = 2 it was 4 of the 5 a worker).
        await new Promise((r) => setTimeout(r, 1500));
        const sc0 = await commandCalls(info);
        const st0 = performance.now();
        await new Promise((r) => setTimeout(r, sizes.idleMs));
        const schedulerIdlePerSec = ((await commandCalls(info)) - sc0) / ((performance.now() - st0) / 1000);
        let fleet: Fleet | undefined;
        try {
          fleet = await startFleet(redis.url, prefix, n, ctx.log);
          // Settled past start-up (registration, first fetches) before the idle window.
          await new Promise((r) => setTimeout(r, 3500));
          const conns = (await connectedClients(info)) - base;
          const c0 = await commandCalls(info);
          const idleCpu0 = await cpuMs(info, fleet);
          const t0 = performance.now();
          await new Promise((r) => setTimeout(r, sizes.idleMs));
          const idleSecs = (performance.now() - t0) / 1000;
          const idle = (((await commandCalls(info)) - c0) / idleSecs - schedulerIdlePerSec) / n;
          const idleCpu1 = await cpuMs(info, fleet);
          // The idle fleet's CPU per second (timers: heartbeats, stalled checks, polls), counted in
          // every workload's CPU too: `less idle` takes it out.
          const idleCpuMsPerSec = { redis: (idleCpu1.redis - idleCpu0.redis) / idleSecs, processes: (idleCpu1.processes - idleCpu0.processes) / idleSecs };

          // Sequential one-stage builds: submit call to handler entry (wall clock across processes).
          const latency = async (name: string, warmUp = 0) => {
            const lat: number[] = [];
            for (let i = -warmUp; i < sizes.latency; i++) {
              const buildId = `${name}-${i}`;
              const entered = new Promise<number>((resolve) => fleet!.latency.set(buildId, resolve));
              const start = performance.timeOrigin + performance.now();
              await scheduler.submitBuild({ buildId, tenant: `t${i % TENANTS}`, priority: 0, platforms: [{ platform: AMD, stages: independent(1) }] });
              const at = await entered;
              if (i >= 0) lat.push(at - start);
              await waitBuilds(waiter, scheduler, [buildId]);
            }
            return { p50: percentile(lat, 50), p99: percentile(lat, 99) };
          };
          // Once on the settled fleet, once after the workloads (at N = 1,000 right after 10,000
          // stages: what that leaves behind, in Redis and in the fleet's processes, shows there).
          // The settled run starts with unrecorded builds: the first ones through a process run
          // code V8 has not compiled yet, at any N.
          const settled = await latency('lat-settled', 10);

          const workload = async (name: string, builds: number, stages: StageSpec[]) => {
            const ids = Array.from({ length: builds }, (_, i) => `${name}-${i}`);
            const c = await commandCalls(info);
            const cpu = await cpuMs(info, fleet!);
            const before = process.env.BENCH_SCALE_CMDS ? await commandBreakdown(info) : undefined;
            const t = performance.now();
            await Promise.all(ids.map((buildId, i) => scheduler.submitBuild({ buildId, tenant: `t${i % TENANTS}`, priority: 0, platforms: [{ platform: AMD, stages }] })));
            await waitBuilds(waiter, scheduler, ids);
            const secs = (performance.now() - t) / 1000;
            const total = builds * stages.length;
            if (before) {
              const after = await commandBreakdown(info);
              const per = [...after].map(([k, v]): [string, number] => [k, (v - (before.get(k) ?? 0)) / total]).filter(([, v]) => v >= 0.05).sort((a, b) => b[1] - a[1]);
              ctx.log(`N=${n} ${name} commands per stage: ${per.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
            }
            const cpuAfter = await cpuMs(info, fleet!);
            return {
              stagesPerSec: total / secs, cmdsPerStage: ((await commandCalls(info)) - c) / total,
              redisCpuUsPerStage: (cpuAfter.redis - cpu.redis) * 1000 / total, processCpuUsPerStage: (cpuAfter.processes - cpu.processes) * 1000 / total,
            };
          };
          const indep = await workload('ind', sizes.indepBuilds, independent(10));
          // One chain round is ~1.5 s: a single one moved 0.75-0.93x between runs of one hour.
          const chainRounds: Workload[] = [];
          for (let round = 0; round < sizes.chainRounds; round++) chainRounds.push(await workload(`chain${round}`, sizes.chainBuilds, chain(20)));
          const ch = chainRounds.sort((a, b) => a.stagesPerSec - b.stagesPerSec)[Math.floor(chainRounds.length / 2)]!;
          const backlog = n >= 1000 && !ctx.quick ? await workload('backlog', 1000, independent(10)) : undefined;

          const after = await latency('lat-after');
          const r: ScaleResult = {
            n, idleCmdsPerWorkerSec: idle, schedulerIdleCmdsPerSec: schedulerIdlePerSec, connsPerWorker: conns / n, indep, chain: ch, backlog,
            settled, after,
          };
          results.push(r);
          const lessIdle = (w: Workload, perSec: number) => perSec * 1000 / w.stagesPerSec;
          const cpuOf = (w: Workload) => `CPU/stage Redis ${w.redisCpuUsPerStage.toFixed(0)} µs (less idle ${(w.redisCpuUsPerStage - lessIdle(w, idleCpuMsPerSec.redis)).toFixed(0)}), `
            + `processes ${w.processCpuUsPerStage.toFixed(0)} µs (less idle ${(w.processCpuUsPerStage - lessIdle(w, idleCpuMsPerSec.processes)).toFixed(0)})`;
          ctx.log(`N=${n}: indep ${indep.stagesPerSec.toFixed(0)} stages/s ${indep.cmdsPerStage.toFixed(0)} cmds/stage (${cpuOf(indep)}); chain ${ch.stagesPerSec.toFixed(0)} stages/s ${ch.cmdsPerStage.toFixed(0)} cmds/stage (${cpuOf(ch)}); `
            + (backlog ? `backlog ${backlog.stagesPerSec.toFixed(0)} stages/s ${backlog.cmdsPerStage.toFixed(0)} cmds/stage; ` : '')
            + `latency p50/p99 settled ${settled.p50.toFixed(1)}/${settled.p99.toFixed(1)} ms, after the workloads ${after.p50.toFixed(1)}/${after.p99.toFixed(1)} ms; idle ${idle.toFixed(2)} cmds/worker/s (the Scheduler's own ${schedulerIdlePerSec.toFixed(1)}/s apart); ${r.connsPerWorker.toFixed(2)} conns/worker`);
        } finally {
          const errors = await fleet?.close();
          if (errors) ctx.log(`N=${n}: ${errors} consumer errors`);
          await scheduler.close();
        }
      }
    } finally {
      info.disconnect();
      waiter.disconnect();
      await redis.stop();
    }
    return rows(results, sizes);
  },
};

function rows(results: ScaleResult[], sizes: { indepBuilds: number; chainBuilds: number }): Measurement[] {
  const out: Measurement[] = [];
  const ref = results.find((r) => r.n === 2);
  const row = (m: Omit<Measurement, 'benchmark'>) => out.push({ benchmark: 'scale', ...m });
  for (const r of results) {
    row({ metric: `N=${r.n} independent (${sizes.indepBuilds}x10) throughput`, unit: 'stages/s', buildyard: r.indep.stagesPerSec });
    row({ metric: `N=${r.n} independent: Redis commands per stage`, unit: 'cmds', buildyard: r.indep.cmdsPerStage });
    const tputRatio = ref ? r.chain.stagesPerSec / ref.chain.stagesPerSec : undefined;
    row({ metric: `N=${r.n} chain (${sizes.chainBuilds}x20) throughput`, unit: 'stages/s', buildyard: r.chain.stagesPerSec,
      ...(tputRatio !== undefined && r.n > 2 ? { ratio: tputRatio, target: '>= 0.9x of N=2', met: tputRatio >= 0.9 } : {}) });
    row({ metric: `N=${r.n} chain: Redis CPU per stage`, unit: 'µs', buildyard: r.chain.redisCpuUsPerStage,
      ...(ref && r.n > 2 ? { ratio: r.chain.redisCpuUsPerStage / ref.chain.redisCpuUsPerStage } : {}) });
    row({ metric: `N=${r.n} chain: scheduler and fleet processes' CPU per stage`, unit: 'µs', buildyard: r.chain.processCpuUsPerStage,
      ...(ref && r.n > 2 ? { ratio: r.chain.processCpuUsPerStage / ref.chain.processCpuUsPerStage } : {}) });
    const cmdRatio = ref ? r.chain.cmdsPerStage / ref.chain.cmdsPerStage : undefined;
    row({ metric: `N=${r.n} chain: Redis commands per stage`, unit: 'cmds', buildyard: r.chain.cmdsPerStage,
      ...(cmdRatio !== undefined && r.n > 2 ? { ratio: cmdRatio, target: '<= 1.5x of N=2', met: cmdRatio <= 1.5 } : {}) });
    if (r.backlog) {
      const ratio = ref ? r.backlog.cmdsPerStage / ref.indep.cmdsPerStage : undefined;
      row({ metric: `N=${r.n} backlog (1000x10 at once) throughput`, unit: 'stages/s', buildyard: r.backlog.stagesPerSec });
      row({ metric: `N=${r.n} backlog: Redis commands per stage`, unit: 'cmds', buildyard: r.backlog.cmdsPerStage,
        ...(ratio !== undefined ? { ratio, target: '<= 1.5x of N=2 independent', met: ratio <= 1.5 } : {}) });
    }
    for (const when of ['settled', 'after'] as const) {
      const label = when === 'settled' ? 'settled fleet' : 'after the workloads';
      const latRatio = ref ? r[when].p50 / ref[when].p50 : undefined;
      row({ metric: `N=${r.n} submit-to-handler p50, ${label}`, unit: 'ms', buildyard: r[when].p50,
        ...(latRatio !== undefined && r.n > 2 ? { ratio: latRatio, target: '<= 1.5x of N=2', met: latRatio <= 1.5 } : {}) });
      row({ metric: `N=${r.n} submit-to-handler p99, ${label}`, unit: 'ms', buildyard: r[when].p99 });
    }
    row({ metric: `N=${r.n} the Scheduler's own idle Redis commands`, unit: 'cmds/s', buildyard: r.schedulerIdleCmdsPerSec });
    row({ metric: `N=${r.n} idle Redis commands per worker`, unit: 'cmds/s', buildyard: r.idleCmdsPerWorkerSec, ratio: r.idleCmdsPerWorkerSec / 2, target: '<= 2/s', met: r.idleCmdsPerWorkerSec <= 2 });
    row({ metric: `N=${r.n} Redis connections per worker`, unit: 'conns', buildyard: r.connsPerWorker, ratio: r.connsPerWorker / 2, target: '<= 2', met: r.connsPerWorker <= 2 });
  }
  return out;
}
