// Issue 14, item 7: hostile Dockerfiles against the parser and planner. Long FROM chains plan
// without exhausting the stack, and every error quotes at most a few hundred bytes of input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, planBuild, DockerfileError, type PlanOptions, type ResolvedImage } from './index.js';

const digest = 'sha256:' + 'a'.repeat(64);
const resolveImage = async (ref: string): Promise<ResolvedImage> => ({ ref: `docker.io/library/${ref}@${digest}`, digest, config: { config: {} } });
const plan = (text: string, opts: Partial<PlanOptions> = {}) =>
  planBuild(parse(text), { platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', resolveImage, ...opts });

function chain(n: number, body = ''): string {
  const lines = ['FROM busybox AS s0'];
  for (let i = 1; i < n; i++) lines.push(`FROM s${i - 1} AS s${i}${body ? `\n${body}` : ''}`);
  return lines.join('\n') + '\n';
}

test('a FROM chain of 10,000 stages plans (no stack overflow)', async () => {
  const p = await plan(chain(10_000));
  const stages = p.platforms[0].stages;
  assert.equal(stages.length, 10_000);
  assert.equal(p.platforms[0].target, 'linux/amd64#9999');
  assert.deepEqual(stages[9999].dependsOn, ['linux/amd64#9998']);
});

test('a FROM chain of 10,000 stages with a step each plans', async () => {
  const p = await plan(chain(10_000, 'ENV X=1'));
  assert.equal(p.platforms[0].stages.length, 10_000);
});

test('a chain of 10,000 COPY --from dependencies plans', async () => {
  const lines = ['FROM busybox AS s0'];
  for (let i = 1; i < 10_000; i++) lines.push(`FROM busybox AS s${i}\nCOPY --from=s${i - 1} /x /x`);
  const p = await plan(lines.join('\n') + '\n');
  assert.equal(p.platforms[0].stages.length, 10_000);
});

const big = 'x'.repeat(1 << 20);
/** Dockerfiles whose one bad word is 1 MB, one per error path of the parser and planner. */
const hostile: Array<[string, string]> = [
  ['an unknown instruction', `FROM busybox\n${big} a\n`],
  ['an unknown flag', `FROM busybox\nRUN --${big}=1 true\n`],
  ['a boolean flag', `FROM busybox\nCOPY --link=${big} a /\n`],
  ['a bad --mount', `FROM busybox\nRUN --mount=type=${big} true\n`],
  ['a bad --mount option', `FROM busybox\nRUN --mount=type=bind,${big}=1 true\n`],
  ['a bad --network', `FROM busybox\nRUN --network=${big} true\n`],
  ['a bad --security', `FROM busybox\nRUN --security=${big} true\n`],
  ['a bad --chmod', `FROM busybox\nCOPY --chmod=${big} a /\n`],
  ['a bad EXPOSE', `FROM busybox\nEXPOSE ${big}\n`],
  ['a bad STOPSIGNAL', `FROM busybox\nSTOPSIGNAL ${big}!\n`],
  ['a bad HEALTHCHECK duration', `FROM busybox\nHEALTHCHECK --interval=${big} CMD true\n`],
  ['a bad HEALTHCHECK type', `FROM busybox\nHEALTHCHECK ${big} true\n`],
  ['a bad HEALTHCHECK retries', `FROM busybox\nHEALTHCHECK --retries=${big} CMD true\n`],
  ['a bad ENV', `FROM busybox\nENV ${big}\n`],
  ['a bad image reference', `FROM ${big}:x\n`],
  ['a bad Dockerfile name', `FROM busybox\nFRM x\n`],
  ['an unknown stage index', `FROM busybox\nCOPY --from=9${'9'.repeat(1 << 20)} /a /b\n`],
  ['a later stage', `FROM busybox AS a\nCOPY --from=s${big} /a /b\nFROM busybox AS s${big}\nFROM a\n`],
  ['an unknown target', `FROM busybox AS a\n`],
  ['a COPY URL', `FROM busybox\nCOPY http://${big} /\n`],
  ['a missing context file', `FROM busybox\nCOPY ${big} /\n`],
  ['a heredoc in an error', `FROM busybox\nCOPY --chmod=<<EOF a /\n${big}\nEOF\n`],
  ['a bad substitution', `FROM busybox\nENV A=\${${big}\n`],
  ['a bad JSON form', `FROM busybox\nSHELL ["${big}", 1]\n`],
];

for (const [what, text] of hostile) {
  test(`errors quote at most a few hundred bytes of input: ${what}`, async () => {
    let error: unknown;
    try {
      await plan(text, {
        target: what === 'an unknown target' ? big : undefined,
        dockerfileName: what === 'a bad Dockerfile name' ? big : undefined,
        context: { entries: [] },
        // A registry's answer quotes the reference back, as real ones do.
        ...(what === 'a bad image reference' ? { resolveImage: async (ref: string) => { throw new Error(`invalid reference format: ${ref}\nat line two`); } } : {}),
      });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof DockerfileError, `a DockerfileError, got ${String(error).slice(0, 300)}`);
    assert.ok(error.message.length <= 700, `${what}: ${error.message.length} chars: ${error.message.slice(0, 300)}`);
    assert.ok(!error.message.includes('\n'), 'one line');
    if (what !== 'a bad image reference') assert.doesNotMatch(error.message, /failed to resolve/, 'the error of the path under test');
  });
}

test('the ${var#pattern} substitutions of one build share one work budget: thousands of costly ones fail the plan in one line instead of holding the frontend', async () => {
  const subst = `ENV Y=\${X//${'*a'.repeat(8)}*b/c}`;
  const text = `FROM busybox\nARG X=${'a'.repeat(20_000)}\n${Array.from({ length: 2_000 }, () => subst).join('\n')}\n`;
  await assert.rejects(plan(text), (e: Error) => e instanceof DockerfileError && /exceeds the work one build's substitutions may do/.test(e.message) && e.message.length < 600);
});

test('a short Dockerfile asking for gigabytes is refused in one line: a value doubled 24 times, thousands of long ENVs copied into thousands of RUNs', async () => {
  const doubling = ['FROM busybox', 'ENV A=aaaaaaaaaaaaaaaa', ...Array.from({ length: 24 }, () => 'ENV A=$A$A')].join('\n');
  await assert.rejects(plan(`${doubling}\n`), (e: Error) => e instanceof DockerfileError && /expands to more than 4 MiB/.test(e.message) && e.message.length < 600);
  const copies = ['FROM busybox', ...Array.from({ length: 5_000 }, (_, i) => `ENV V${i}=${'v'.repeat(100)}`), ...Array.from({ length: 5_000 }, () => 'RUN true')].join('\n');
  await assert.rejects(plan(`${copies}\n`), (e: Error) => e instanceof DockerfileError && /more than 64 MiB of ENV, ARG and LABEL values/.test(e.message));
  const labels = ['FROM busybox', `ARG A=${'a'.repeat(60_000)}`, 'ENV A=$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A', ...Array.from({ length: 100 }, (_, i) => `LABEL l${i}=$A$A$A$A`)].join('\n');
  await assert.rejects(plan(`${labels}\n`), (e: Error) => e instanceof DockerfileError && /more than 64 MiB/.test(e.message));
});

test('100,000 ENV instructions in one stage plan (each was a copy of the whole env: quadratic)', async () => {
  const p = await plan(`FROM busybox\n${Array.from({ length: 100_000 }, (_, i) => `ENV A${i}=1`).join('\n')}\nENV A5=five A6=$A5\n`);
  const env = p.platforms[0].stages[0].config.Env!;
  assert.equal(env.length, 100_001, 'PATH and the 100,000 names, each once');
  assert.ok(env.includes('A5=five') && env.includes('A6=1'), 'one ENV of several names reads the env from before it');
});
