// 4. Layer export: @buildyard/snapshot's tarDirectory (walk + deterministic tar + compress +
// diffID and digest in one pass, written to a file) vs shell pipelines doing the same work:
// tar, sha256 of the tar, compress, sha256 of the blob, write the blob.
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { tarDirectory, type LayerCompression } from '@buildyard/snapshot';
import { busyboxRootfs } from '@buildyard/testkit';
import { higherIsBetter, type Benchmark, type Measurement } from '../lib/Measurement.js';
import { runCommand } from '../lib/runCommand.js';
import { median, timed } from '../lib/stats.js';

const repoRoot = resolve(import.meta.dirname, '../../..');

/** The same work as tarDirectory, as a shell pipeline; `compressor` reads tar on stdin. */
function peerPipeline(dir: string, out: string, compressor: string): Promise<string> {
  return runCommand('bash', ['-c', `set -o pipefail; tar -cf - --sort=name -C "$1" . | tee >(sha256sum > "$2.diffid") | ${compressor} | tee "$2" | sha256sum`, 'bash', dir, out]);
}

export const compressionBenchmark: Benchmark = {
  name: 'compression',
  title: 'layer export: tarDirectory vs tar | gzip / pigz',
  async run(ctx) {
    const work = await mkdtemp(join(tmpdir(), 'buildyard-bench-compress-'));
    try {
      // A realistic layer: JavaScript text, native binaries, and a busybox rootfs.
      const tree = join(work, 'tree');
      await mkdir(tree);
      await cp(join(repoRoot, 'node_modules/typescript'), join(tree, 'typescript'), { recursive: true });
      if (!ctx.quick) {
        await cp(join(repoRoot, 'node_modules/@esbuild'), join(tree, 'esbuild'), { recursive: true });
        await cp(join(repoRoot, 'node_modules/zstd-napi'), join(tree, 'zstd-napi'), { recursive: true, dereference: false });
      }
      await cp(await busyboxRootfs('amd64'), join(tree, 'rootfs'), { recursive: true, verbatimSymlinks: true });
      const samples = ctx.quick ? 2 : 3;
      const ours = async (compression: LayerCompression, level?: number) => {
        const runs: number[] = [];
        let size = 0;
        let uncompressed = 0;
        for (let i = 0; i < samples; i++) {
          const blobPath = join(work, `blob-${compression}-${level ?? 'd'}-${i}`);
          const r = await timed(() => tarDirectory(tree, { compression, level, blobPath }));
          runs.push(r.ms);
          size = r.value.size;
          uncompressed = r.value.uncompressedSize;
          await rm(blobPath, { force: true });
        }
        return { ms: median(runs), size, uncompressed };
      };
      const peer = async (compressor: string) => {
        const runs: number[] = [];
        for (let i = 0; i < samples; i++) {
          const out = join(work, `peer-${i}`);
          runs.push((await timed(() => peerPipeline(tree, out, compressor))).ms);
          await rm(out, { force: true });
          await rm(`${out}.diffid`, { force: true });
        }
        return median(runs);
      };
      await ours('gzip', 1); // warm the page cache and the JIT; not counted
      const gzip1 = await ours('gzip', 1);
      const gzip6 = await ours('gzip');
      const zstd = await ours('zstd');
      const peerGzip1 = await peer('gzip -1');
      const peerGzip6 = await peer('gzip -6');
      const peerPigz = await peer('pigz');
      const mib = gzip1.uncompressed / 1024 ** 2;
      const tput = (ms: number) => mib / (ms / 1000);
      ctx.log(`tree ${mib.toFixed(0)} MiB tar: ours gzip-1 ${gzip1.ms.toFixed(0)} ms, gzip-6 ${gzip6.ms.toFixed(0)} ms, zstd-3 ${zstd.ms.toFixed(0)} ms; gzip -1 ${peerGzip1.toFixed(0)} ms, gzip -6 ${peerGzip6.toFixed(0)} ms, pigz ${peerPigz.toFixed(0)} ms`);
      const row = (metric: string, b: number, p: number, peerName: string, target?: number, note?: string): Measurement =>
        higherIsBetter({ benchmark: 'compression', metric, unit: 'MiB/s', buildyard: tput(b), peer: tput(p), peerName, note }, target);
      const ratio = (x: { size: number }) => `${((x.size / gzip1.uncompressed) * 100).toFixed(0)}% of tar size`;
      return [
        row('gzip level 1', gzip1.ms, peerGzip1, 'tar | gzip -1', 0.8, ratio(gzip1)),
        row('zstd level 3 (alt. target)', zstd.ms, peerGzip1, 'tar | gzip -1', 1.0, ratio(zstd)),
        row('gzip level 6 (worker default)', gzip6.ms, peerGzip6, 'tar | gzip -6', undefined, ratio(gzip6)),
        row('gzip level 6 vs pigz (2 cores)', gzip6.ms, peerPigz, 'tar | pigz', undefined),
      ];
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
};
