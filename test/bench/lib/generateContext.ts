import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * Writes `files` files totalling about `bytes` bytes under `dir` (100 files per directory, sizes
 * spread around the mean, random contents so no two files dedupe and nothing compresses).
 */
export async function generateContext(dir: string, files: number, bytes: number): Promise<{ files: number; bytes: number }> {
  const mean = Math.floor(bytes / files);
  let total = 0;
  const jobs: Array<() => Promise<void>> = [];
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${String(Math.floor(i / 100)).padStart(4, '0')}`);
    // Deterministic spread: 0.5x..1.5x the mean.
    const size = Math.max(1, Math.floor(mean * (0.5 + ((i * 7919) % 1000) / 1000)));
    total += size;
    jobs.push(async () => {
      if (i % 100 === 0) await mkdir(sub, { recursive: true });
      await writeFile(join(sub, `f${i}.bin`), randomBytes(size));
    });
  }
  // Directories first (every 100th job creates one), then files with bounded concurrency.
  for (let i = 0; i < jobs.length; i += 100) await jobs[i]();
  let next = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < jobs.length) {
      const j = next++;
      if (j % 100 !== 0) await jobs[j]();
    }
  }));
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\nCOPY . /ctx\n');
  return { files, bytes: total };
}
