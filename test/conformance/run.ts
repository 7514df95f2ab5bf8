// The conformance suite from the command line.
//
//   npm run conformance                      Buildyard (a real cluster) against the recorded expectations
//   npm run conformance -- --refresh         re-run buildkitd live and rewrite expected/*.json
//   npm run conformance -- --verify          buildkitd live against expected/*.json (no writes)
//   npm run conformance -- --live            Buildyard against buildkitd live
//   npm run conformance -- --local           Buildyard's in-process engine (buildLocal) instead of a cluster
//   ... --only <regex>                       only cases whose group/name matches
//   ... --jobs <n>                           cluster builds at once when checking (default CLUSTER_JOBS, as the test; see Harness)
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { groups } from './cases/index.js';
import { compareResults } from './lib/compare.js';
import { caseDigest } from './lib/context.js';
import { CLUSTER_JOBS, Harness } from './lib/harness.js';
import type { Case, Expected, Result } from './lib/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const mode = argv.includes('--refresh') ? 'refresh' : argv.includes('--verify') ? 'verify' : argv.includes('--live') ? 'live' : 'check';
const onlyAt = argv.indexOf('--only');
const only = onlyAt >= 0 ? new RegExp(argv[onlyAt + 1]) : undefined;
const jobsAt = argv.indexOf('--jobs');
// Only checking against the recordings builds on several lanes; buildkitd builds one at a time.
const jobs = mode === 'check' && !argv.includes('--local') ? (jobsAt >= 0 ? Math.max(1, Math.floor(Number(argv[jobsAt + 1])) || 1) : CLUSTER_JOBS) : 1;

export function expectedPath(group: string): string {
  return join(here, 'expected', `${group}.json`);
}

function loadExpected(group: string): Record<string, Expected> {
  const p = expectedPath(group);
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : {};
}

async function reference(h: Harness, c: Case): Promise<Expected> {
  const digest = caseDigest(c);
  if (c.upstream?.expect) return { ...c.upstream.expect, caseDigest: digest, source: `upstream: ${c.upstream.change}` };
  const recorded = await h.withBuildkit(c.upstream?.equivalent ? { ...c, ...c.upstream.equivalent } : c);
  if (c.upstream?.patch) return { ...c.upstream.patch(structuredClone(recorded)), caseDigest: digest, source: `buildkitd v0.11.6 patched for upstream: ${c.upstream.change}` };
  return { ...recorded, caseDigest: digest, source: 'buildkitd v0.11.6' };
}

async function main(): Promise<void> {
  const h = await Harness.start({ lanes: jobs });
  let failed = 0;
  let total = 0;
  try {
    for (const [group, cases] of Object.entries(groups)) {
      const expected = loadExpected(group);
      const next: Record<string, Expected> = mode === 'refresh' ? { ...expected } : expected;
      const selected = cases.filter((c) => !only || only.test(`${group}/${c.name}`));
      // With --jobs, every case of the group is asked for at once (the harness's lanes take them
      // in turn); results are printed in the group's order.
      const built = jobs > 1 ? new Map(selected.map((c) => [c, h.withCluster(c).catch((err: Error) => err)])) : undefined;
      for (const c of selected) {
        total++;
        let want: Result;
        let got: Result;
        if (mode === 'refresh') {
          next[c.name] = await reference(h, c);
          console.log(`recorded ${group}/${c.name}: ${next[c.name].ok ? 'ok' : next[c.name].error}`);
          continue;
        }
        if (mode === 'verify') {
          if (c.upstream?.expect) continue;
          want = expected[c.name];
          got = await h.withBuildkit(c.upstream?.equivalent ? { ...c, ...c.upstream.equivalent } : c);
          if (c.upstream?.patch) got = c.upstream.patch(got);
        } else {
          want = mode === 'live' ? await reference(h, c) : expected[c.name];
          const early = await built?.get(c);
          if (early instanceof Error) throw early;
          got = early ?? (argv.includes('--local') ? await h.withBuildyard(c) : await h.withCluster(c));
        }
        let diffs = want ? compareResults(want, got) : ['no recorded expectation: run npm run conformance -- --refresh'];
        if (c.divergence && mode !== 'verify' && want) {
          console.log(`${diffs.length > 0 ? 'known' : 'FIXED'} ${group}/${c.name}: ${c.divergence}${diffs.length > 0 ? '\n  ' + diffs.join('\n  ') : ''}`);
          diffs = diffs.length > 0 ? [] : ['the known divergence is gone: remove `divergence` from the case'];
          if (diffs.length === 0) continue;
        }
        if (diffs.length > 0) {
          failed++;
          console.log(`FAIL ${group}/${c.name}\n  ${diffs.join('\n  ')}`);
        } else console.log(`ok   ${group}/${c.name}`);
      }
      if (mode === 'refresh') {
        const names = new Set(cases.map((c) => c.name));
        const ordered = Object.fromEntries(Object.entries(next).filter(([k]) => names.has(k)).sort(([a], [b]) => (a < b ? -1 : 1)));
        writeFileSync(expectedPath(group), JSON.stringify(ordered, null, 1) + '\n');
      }
    }
  } finally {
    await h.stop();
  }
  console.log(`${total - failed}/${total} cases agree`);
  process.exitCode = failed > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
