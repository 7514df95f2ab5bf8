// Issue 17 acceptance, side by side: the same `docker buildx build` flags against the reference
// buildkitd (a remote-driver builder on its socket) and against a real cluster's BuildKit
// endpoint; each output tree must be the same (paths, file types, contents and modes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, referenceTools, startCluster, until, type Cluster } from '@buildyard/testkit';
import { Buildkitd } from '../conformance/lib/buildkit.js';

const tools = referenceTools('docker-buildx', 'buildkitd', 'buildctl');
const skip = tools.missing ?? false;
let cluster: Cluster;
let buildkitd: Buildkitd;
let work: string;

before(async () => {
  if (skip) return;
  const port = await freePort();
  cluster = await startCluster({
    workers: 2,
    env: { BUILDYARD_BUILDKIT_LISTEN: `127.0.0.1:${port}`, BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  buildkitd = await Buildkitd.start(cluster.registry.host);
  await until('the BuildKit endpoint to listen', () => cluster.frontendProcess.output().includes('buildkit endpoint listening'), 60_000);
  work = mkdtempSync(join(tmpdir(), 'buildyard-buildx-compare-'));
  for (const [name, addr] of [['ours', `tcp://127.0.0.1:${port}`], ['reference', buildkitd.addr]]) {
    const created = await buildx('create', '--name', name, '--driver', 'remote', addr);
    assert.equal(created.code, 0, created.stderr);
  }
});
after(async () => { await buildkitd?.stop(); await cluster?.stop(); });

interface Run { code: number; stdout: string; stderr: string }

function buildx(...args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(tools.paths['docker-buildx'], args, { env: { ...process.env, BUILDX_CONFIG: join(work, 'buildx') }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** Every entry under `dir`: path, type, mode and content digest (or link target). Times are left out. */
function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, path));
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${path} -> ${readlinkSync(join(dir, path))}`);
    else if (st.isDirectory()) out.push(`${path}/ ${mode}`, ...tree(dir, path));
    else out.push(`${path} ${mode} ${createHash('sha256').update(readFileSync(join(dir, path))).digest('hex').slice(0, 16)}`);
  }
  return out;
}

/** The same buildx build on both builders, each into its own dest; answers both trees. */
async function both(dir: string, flags: string[]): Promise<{ ours: string[]; reference: string[] }> {
  const trees: Record<string, string[]> = {};
  for (const builder of ['reference', 'ours']) {
    const dest = join(work, `${dir.split('/').pop()}-${builder}`);
    const run = await buildx('--builder', builder, 'build', '--progress', 'plain', ...flags, '-o', `type=local,dest=${dest}`, dir);
    assert.equal(run.code, 0, `${builder}:\n${run.stderr}`);
    trees[builder] = tree(dest);
  }
  return { ours: trees.ours!, reference: trees.reference! };
}

test('buildx --platform (two) --build-arg --target --secret -o type=local: the same folders and files as on buildkitd', { skip }, async () => {
  const dir = join(work, 'flags');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'secret.txt'), 's3cr3t\n');
  writeFileSync(join(dir, 'Dockerfile'), [
    `FROM ${cluster.busybox.reference} AS base`,
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
  assert.equal(readFileSync(join(work, 'flags-ours/linux_arm64/greeting'), 'utf8'), 'hello aarch64\n');
});
