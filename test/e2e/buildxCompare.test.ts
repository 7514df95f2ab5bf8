// Issue 17 acceptance, side by side: the same `docker buildx build` flags against the reference
// buildkitd (a remote-driver builder on its socket) and against a real cluster's BuildKit
// endpoint; each output tree must be the same (paths, file types, contents and modes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceTools } from '@buildyard/testkit';
import { startComparison, tree, type Comparison } from './buildxComparison.js';

const tools = referenceTools('docker-buildx', 'buildkitd', 'buildctl');
const skip = tools.missing ?? false;
let c: Comparison;

before(async () => { if (!skip) c = await startComparison(tools.paths['docker-buildx']!, 2); });
after(async () => { await c?.stop(); });

/** The same buildx build on both builders, each into its own dest; answers both trees. */
async function both(dir: string, flags: string[]): Promise<{ ours: string[]; reference: string[] }> {
  const trees: Record<string, string[]> = {};
  for (const builder of ['reference', 'ours']) {
    const dest = join(c.work, `${dir.split('/').pop()}-${builder}`);
    const run = await c.buildx('--builder', builder, 'build', '--progress', 'plain', ...flags, '-o', `type=local,dest=${dest}`, dir);
    assert.equal(run.code, 0, `${builder}:\n${run.stderr}`);
    trees[builder] = tree(dest);
  }
  return { ours: trees.ours!, reference: trees.reference! };
}

test('buildx --platform (two) --build-arg --target --secret -o type=local: the same folders and files as on buildkitd', { skip }, async () => {
  const dir = join(c.work, 'flags');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'secret.txt'), 's3cr3t\n');
  writeFileSync(join(dir, 'Dockerfile'), [
    `FROM ${c.cluster.busybox.reference} AS base`,
    'ARG GREETING=unset',
    'RUN --mount=type=secret,id=token mkdir -p /out && echo "$GREETING $(uname -m)" > /out/greeting && cat /run/secrets/token > /out/token',
    'FROM scratch AS picked',
    'COPY --from=base /out /',
    'FROM picked AS final-not-built',
    'COPY --from=base /bin/busybox /busybox',
    '',
  ].join('\n'));
  const { ours, reference } = await both(dir, [
    '--platform', 'linux/amd64,linux/arm64', '--build-arg', 'GREETING=hello', '--target', 'picked', '--secret', `id=token,src=${join(dir, 'secret.txt')}`,
  ]);
  assert.deepEqual(ours, reference);
  // What the trees hold: one folder per platform, each with the target's files only.
  assert.deepEqual(reference.filter((l) => !l.endsWith('/ 755')).map((l) => l.split(' ')[0]), ['linux_amd64/greeting', 'linux_amd64/token', 'linux_arm64/greeting', 'linux_arm64/token']);
  assert.equal(readFileSync(join(c.work, 'flags-ours/linux_arm64/greeting'), 'utf8'), 'hello aarch64\n');
});
