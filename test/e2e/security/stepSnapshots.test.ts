// A worker's snapshots serve every tenant's builds. A snapshot unpacked from a checked blob holds
// what its name says; a step's own result does not have to: its upper dir can hold a file whose
// contents changed while its size and times did not (the layer diff leaves such a copy-up out,
// as BuildKit's overlay differ does), or a user.* xattr the layer does not carry. So a step's
// result must serve only its own tenant, or another tenant's build would run on what the
// attacker's step left there, under layers that say otherwise.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCacheIndex } from '@buildyard/cache';
import { walkContext } from '@buildyard/context';
import { parse, planBuild } from '@buildyard/dockerfile';
import { pruneSnapshots, readXattrs } from '@buildyard/snapshot';
import { openLocalEngine, StageSolver } from '@buildyard/solver';

const skip = process.getuid?.() === 0 ? false : 'needs root (runc and overlayfs)';
let work: string;
before(async () => { work = await mkdtemp(join(tmpdir(), 'buildyard-step-snapshots-')); });
after(async () => { if (work) await rm(work, { recursive: true, force: true }); });

test('the attacker: a step that rewrites a file keeping its size and times, making the layer another tenant\'s empty one, does not become that tenant\'s snapshot', { skip, timeout: 180_000 }, async () => {
  const state = join(work, 'worker');
  const engine = await openLocalEngine(state);
  const contextDir = join(work, 'context');
  await mkdir(contextDir);
  await copyFile('/bin/busybox', join(contextDir, 'busybox')); // Debian's busybox-static
  const entries = await walkContext(contextDir, { dockerignore: [], cacheDir: join(work, 'hashes'), readXattrs });

  /** One build of `dockerfile` for `tenant` on the shared worker (its own cache index, as FleetWorker keeps them). */
  const build = async (tenant: string, dockerfile: string) => {
    const solver = new StageSolver({ stateDir: state, snapshotter: engine.snapshotter, executor: engine.executor, blobs: engine.blobs,
      cache: new LocalCacheIndex(join(state, `cache-${tenant}`)), images: engine.images, compression: 'gzip', sourceDateEpoch: 0 });
    const plan = await planBuild(parse(dockerfile, { file: 'Dockerfile' }), {
      platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', buildArgs: {}, context: { entries }, dockerfileName: 'Dockerfile',
      resolveImage: async () => { throw new Error('no images in this test'); },
    });
    const [stage] = plan.platforms[0]!.stages;
    return solver.solve({ stage: stage!, inputs: {}, contextDir, tenant });
  };
  const out = (digest: string) => execFileSync('tar', ['-xzOf', engine.blobs.path(digest), 'out.txt'], { encoding: 'utf8' });

  // A reproducible build (SOURCE_DATE_EPOCH), so anyone can make its layers byte for byte.
  const victim = (version: string) => [
    'FROM scratch',
    'COPY busybox /bin/busybox',
    'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir /app && echo \'echo GOOD-TOOL\' > /app/tool.sh"]',
    'RUN ["/bin/busybox", "true"]',
    `RUN ["/bin/busybox", "sh", "-c", "/bin/busybox sh /app/tool.sh > /out.txt; echo ${version} >> /out.txt"]`,
  ].join('\n');
  const first = await build('victim', victim('v1'));
  assert.equal(out(first.layers.at(-1)!.digest), 'GOOD-TOOL\nv1\n');

  // The victim's snapshots are gone (a prune, or a worker that never ran its build); the
  // attacker's build makes the same first layers, then rewrites tool.sh to the same size with its
  // times restored: an empty layer, the same as the victim's `RUN true`.
  await pruneSnapshots(engine.snapshotter, 0);
  assert.deepEqual(await engine.snapshotter.list(), []);
  const attacker = await build('attacker', [
    'FROM scratch',
    'COPY busybox /bin/busybox',
    'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir /app && echo \'echo GOOD-TOOL\' > /app/tool.sh"]',
    'RUN --mount=type=tmpfs,target=/s ["/bin/busybox", "sh", "-c", "cd /s && /bin/busybox touch ref && /bin/busybox touch -r /app/tool.sh ref && echo \'echo EVIL-TOOL\' > /app/tool.sh && /bin/busybox touch -r ref /app/tool.sh"]',
  ].join('\n'));
  assert.deepEqual(attacker.layers.map((l) => l.digest), first.layers.slice(0, 3).map((l) => l.digest), 'the attacker made the victim\'s layers');

  // The victim's next build reuses its cached steps and runs the last one on their layers.
  const second = await build('victim', victim('v2'));
  assert.equal(second.verticesCached, 3);
  assert.equal(out(second.layers.at(-1)!.digest), 'GOOD-TOOL\nv2\n', 'the victim\'s step ran on what its layers hold');
  await engine.executor.settled();
});
