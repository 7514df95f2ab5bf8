// `npm run bench`: runs the selected benchmarks once each, prints one table of ratios against
// peers measured in this same run, and writes test/bench/results/latest.json.
//   npm run bench -- [--quick] [--only=build,context,...] [--out=FILE]
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseBenchArgs } from './lib/args.js';
import { formatTable } from './lib/formatTable.js';
import type { Benchmark, Measurement } from './lib/Measurement.js';
import { buildBenchmark } from './benchmarks/build.js';
import { contextBenchmark } from './benchmarks/context.js';
import { compressionBenchmark } from './benchmarks/compression.js';
import { schedulerBenchmark } from './benchmarks/scheduler.js';
import { fanoutBenchmark } from './benchmarks/fanout.js';
import { emulationBenchmark } from './benchmarks/emulation.js';
import { memoryBenchmark } from './benchmarks/memory.js';
import { scaleBenchmark } from './benchmarks/scale.js';
import { startupBenchmark } from './benchmarks/startup.js';

const all: Benchmark[] = [buildBenchmark, contextBenchmark, compressionBenchmark, schedulerBenchmark, fanoutBenchmark, emulationBenchmark, memoryBenchmark, scaleBenchmark, startupBenchmark];

async function main(): Promise<number> {
  let args;
  try {
    args = parseBenchArgs(process.argv.slice(2), all.map((b) => b.name));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}`);
    return 2;
  }
  const selected = all.filter((b) => !args.only || args.only.includes(b.name));
  const rows: Measurement[] = [];
  const failures: Array<{ benchmark: string; error: string }> = [];
  const started = Date.now();
  for (const b of selected) {
    const t0 = Date.now();
    console.error(`== ${b.name}: ${b.title}${args.quick ? ' (quick)' : ''}`);
    try {
      rows.push(...await b.run({ quick: args.quick, log: (m) => console.error(`   ${b.name}: ${m}`) }));
      console.error(`   ${b.name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } catch (err) {
      // One broken benchmark must not hide the others' numbers.
      const error = (err as Error).message.split('\n')[0];
      failures.push({ benchmark: b.name, error });
      console.error(`   ${b.name}: FAILED: ${error}`);
    }
  }
  console.log(formatTable(rows));
  for (const f of failures) console.log(`FAILED ${f.benchmark}: ${f.error}`);
  const out = resolve(args.out ?? join(import.meta.dirname, 'results/latest.json'));
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify({
    date: new Date().toISOString(), quick: args.quick, benchmarks: selected.map((b) => b.name),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version, platform: `${process.platform}/${process.arch}` },
    durationSec: (Date.now() - started) / 1000, rows, failures,
  }, null, 2) + '\n');
  console.error(`wrote ${out} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return failures.length > 0 ? 1 : 0;
}

// Services are stopped by each benchmark's finally blocks; exit explicitly because gRPC and
// Redis clients may keep the event loop alive for a moment.
main().then((code) => process.exit(code), (err) => { console.error(`bench: ${(err as Error).message}`); process.exit(1); });
