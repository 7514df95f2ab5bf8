// The differential conformance suite in `npm test`: every case is built by a real Buildyard
// cluster (frontend, Redis, one worker: runc, overlayfs, the test registry), the image pushed and
// read back, and compared with the result recorded from the reference buildkitd
// (expected/*.json; `npm run conformance -- --refresh` records them again, `-- --verify` checks
// them against a live daemon). One cluster serves every case, CLUSTER_JOBS builds at a time
// within a group (each test is still one case, built, read back and compared on its own).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { groups } from './cases/index.js';
import { compareResults } from './lib/compare.js';
import { caseDigest } from './lib/context.js';
import { CLUSTER_JOBS, Harness } from './lib/harness.js';
import type { Expected } from './lib/types.js';

const here = dirname(fileURLToPath(import.meta.url));
let h: Harness;
before(async () => { h = await Harness.start({ lanes: CLUSTER_JOBS }); });
after(async () => { await h?.stop(); });

for (const [group, cases] of Object.entries(groups)) {
  const expected: Record<string, Expected> = JSON.parse(readFileSync(join(here, 'expected', `${group}.json`), 'utf8'));
  describe(`conformance ${group}`, { concurrency: CLUSTER_JOBS }, () => {
    for (const c of cases) {
      test(c.name, async () => {
        const want = expected[c.name];
        assert.ok(want, `no recorded expectation for ${group}/${c.name}: run npm run conformance -- --refresh --only '${group}/${c.name}$'`);
        assert.equal(want.caseDigest, caseDigest(c), `the case changed since its expectation was recorded: run npm run conformance -- --refresh --only '${group}/${c.name}$'`);
        const diffs = compareResults(want, await h.withCluster(c));
        if (c.divergence) assert.notEqual(diffs.length, 0, `known divergence "${c.divergence}" is gone: remove it from the case`);
        else assert.deepEqual(diffs, [], `Buildyard differs from BuildKit (${want.source}):\n  ${diffs.join('\n  ')}`);
      });
    }
  });
}
