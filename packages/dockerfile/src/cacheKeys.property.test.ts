// Cache keys come from what a COPY really reads: for generated contexts, sources and --exclude
// patterns, changing a file changes the COPY's key exactly when the copy itself (fileop's copy,
// run on a real directory) gives a different result. Needs root: copy() sets owners.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { copy } from '@buildyard/fileop';
import type { ContextEntry } from '@buildyard/graph';
import { parse, planBuild } from './index.js';

// Base names are unique, so no two sources land on the same destination path and a file that
// is read always shows in the copy's result.
const FILES = ['x1.txt', 'y1.md', 'a/x2.txt', 'a/y2.md', 'a/z2', 'b/x3.txt', 'b/c/y4.md', 'b/c/z4', 'z1'];
const SOURCES = ['*', '*.txt', 'a', 'a/*', 'b/*.md', '?1*', 'a/x2.txt', '[ab]', '*/z?', 'b/c', '*/c/*', 'nomatch*', '.'];
const EXCLUDES = ['*.md', '**/z?', '!a/y2.md', 'b', 'c', '**/*.txt', 'a/x2.txt'];

const sha = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;

function entries(files: Record<string, string>): ContextEntry[] {
  const out: ContextEntry[] = [];
  const dirs = new Set<string>();
  for (const [p, content] of Object.entries(files)) {
    for (let d = dirname(p); d !== '.'; d = dirname(d)) dirs.add(d);
    out.push({ path: p, mode: 0o100644, size: content.length, digest: sha(content) });
  }
  for (const d of dirs) out.push({ path: d, mode: 0o40755, size: 0, digest: '' });
  return out.sort((a, b) => (a.path < b.path ? -1 : 1));
}

async function copyKey(files: Record<string, string>, sources: string[], exclude: string[]): Promise<string> {
  const flags = exclude.map((e) => `--exclude=${e} `).join('');
  const df = parse(`FROM scratch\nCOPY ${flags}${sources.join(' ')} /out/\n`);
  const plan = await planBuild(df, { platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', context: { entries: entries(files) }, resolveImage: async () => { throw new Error('no images'); } });
  return plan.platforms[0].stages[0].vertices[0].cacheKey;
}

async function listTree(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(join(root, rel), { withFileTypes: true })) {
    const p = rel === '' ? d.name : `${rel}/${d.name}`;
    if (d.isDirectory()) out.push(`${p}/`, ...(await listTree(root, p)));
    else out.push(`${p}=${await readFile(join(root, p), 'utf8')}`);
  }
  return out.sort();
}

async function copyResult(work: string, files: Record<string, string>, sources: string[], exclude: string[]): Promise<string> {
  const src = await mkdtemp(join(work, 'src-'));
  const dest = await mkdtemp(join(work, 'dest-'));
  for (const [p, content] of Object.entries(files)) {
    await mkdir(dirname(join(src, p)), { recursive: true });
    await writeFile(join(src, p), content);
  }
  try {
    await copy({ srcRoot: src, sources, exclude, destRoot: dest, dest: '/out/' });
    return JSON.stringify(await listTree(dest));
  } catch (err) {
    return `error: ${(err as Error).message}`;
  } finally {
    await rm(src, { recursive: true, force: true });
    await rm(dest, { recursive: true, force: true });
  }
}

test('a COPY key changes exactly when a file the copy reads changes', async () => {
  const work = await mkdtemp(join(tmpdir(), 'buildyard-keys-'));
  try {
    await fc.assert(fc.asyncProperty(
      fc.subarray(FILES, { minLength: 1 }),
      fc.subarray(SOURCES, { minLength: 1, maxLength: 3 }),
      fc.subarray(EXCLUDES, { maxLength: 2 }),
      async (present, sources, exclude) => {
        const files = Object.fromEntries(present.map((p) => [p, `v1 ${p}`]));
        const baseResult = await copyResult(work, files, sources, exclude);
        fc.pre(!baseResult.startsWith('error'));
        const baseKey = await copyKey(files, sources, exclude);
        for (const p of present) {
          const changed = { ...files, [p]: `v2 ${p}` };
          const read = (await copyResult(work, changed, sources, exclude)) !== baseResult;
          const keyChanged = (await copyKey(changed, sources, exclude)) !== baseKey;
          assert.equal(keyChanged, read, `${p} ${read ? 'is' : 'is not'} read by COPY ${exclude.map((e) => `--exclude=${e} `).join('')}${sources.join(' ')} /out/ but its change ${keyChanged ? 'changes' : 'does not change'} the key`);
        }
      },
    ), { numRuns: 60 });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
