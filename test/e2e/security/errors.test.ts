// Issue 14, item 7: a 1 MB RUN line (or any 1 MB word) gave a 1 MB error. Over the wire, as the
// attacker sends it, every error now stays one short line, whether the planner or a failing
// step produced it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { solve } from '../grpcClient.js';
import { clusterFixture } from './clusterFixture.js';

const fx = clusterFixture({ workers: 1 }, 'errors');
const big = 'x'.repeat(1 << 20);

const cases: Array<[string, (base: string) => string, RegExp]> = [
  ['a failing 1 MB RUN line', (base) => `FROM ${base}\nRUN false ${big}\n`, /did not complete successfully: exit code: 1/],
  ['a 1 MB unknown instruction', (base) => `FROM ${base}\n${big} a\n`, /unknown instruction/],
  ['a 1 MB --mount', (base) => `FROM ${base}\nRUN --mount=type=${big} true\n`, /mount/],
  ['a 1 MB ADD URL the worker may not fetch', (base) => `FROM ${base}\nADD http://127.0.0.1:1/${big} /x\n`, /not reachable from builds/],
];

for (const [what, dockerfile, pattern] of cases) {
  test(`${what} gives a one-line error of a few hundred bytes`, { timeout: 120_000 }, async () => {
    const outcome = await solve(fx.cluster, fx.context(what.replace(/\W+/g, '-'), dockerfile(fx.cluster.busybox.reference)), { platforms: ['linux/amd64'], noCache: true });
    assert.ok(outcome.error, 'the build fails');
    assert.match(outcome.error.message, pattern);
    assert.ok(outcome.error.message.length < 1200, `${outcome.error.message.length} chars: ${outcome.error.message.slice(0, 300)}`);
    assert.ok(!outcome.error.message.includes('\n'), 'one line');
    const vertexErrors = outcome.events.map((e) => e.vertex?.error ?? '').filter(Boolean);
    for (const e of vertexErrors) assert.ok(e.length < 1200, `a progress event's error is short too: ${e.length} chars`);
  });
}
