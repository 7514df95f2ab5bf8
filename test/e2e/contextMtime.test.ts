// COPY from the build context keeps the client's file times, as BuildKit does (fsutil sends
// Stat.ModTime and the copy keeps it): the pushed layer holds the times the files had on the
// client, not when the server stored or unpacked them. The cache key ignores times (BuildKit's
// contenthash drops mtime from the tar header it hashes), so a context whose only change is a
// time reuses the cached step and gives the same image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { solve } from './grpcClient.js';
import { ContextDirs } from './security/contextDirs.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster)';

let cluster: Cluster;
let contexts: ContextDirs;

before(async () => {
  if (skip) return;
  cluster = await startCluster({ workers: 1 });
  contexts = new ContextDirs('context-mtime');
});
after(async () => {
  await cluster?.stop();
  contexts?.remove();
});

/** path -> "YYYY-MM-DD HH:MM:SS" of every entry of the image's layers, as `tar -tv --full-time` lists them. */
async function layerTimes(image: string, manifestDigest: string): Promise<Map<string, string>> {
  const repo = image.slice(image.indexOf('/') + 1).replace(/:[^:/]+$/, '');
  const base = `http://${cluster.registry.host}/v2/${repo}`;
  const manifest = await (await fetch(`${base}/manifests/${manifestDigest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json() as { layers: Array<{ digest: string }> };
  const times = new Map<string, string>();
  for (const { digest } of manifest.layers) {
    const blob = Buffer.from(await (await fetch(`${base}/blobs/${digest}`)).arrayBuffer());
    const out = spawnSync('tar', ['-tvz', '--full-time', '--numeric-owner'], { input: blob, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, TZ: 'UTC' } });
    assert.equal(out.status, 0, out.stderr);
    for (const line of out.stdout.split('\n')) {
      const m = /(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.+?)(?: -> .*)?$/.exec(line);
      if (m) times.set(m[2]!.replace(/\/$/, ''), m[1]!);
    }
  }
  return times;
}

test('COPY from the context keeps the client\'s mtimes of files, directories and symlinks; a time-only change is a cache hit', { skip }, async () => {
  const dir = contexts.make('app', `FROM ${cluster.busybox.reference}
COPY old.txt /old.txt
COPY tree /tree
`);
  writeFileSync(join(dir, 'old.txt'), 'old\n');
  mkdirSync(join(dir, 'tree/sub'), { recursive: true });
  writeFileSync(join(dir, 'tree/sub/deep.txt'), 'deep\n');
  spawnSync('ln', ['-s', 'sub/deep.txt', join(dir, 'tree/link')]);
  utimesSync(join(dir, 'old.txt'), new Date('2001-09-09T01:46:40Z'), new Date('2001-09-09T01:46:40Z'));
  utimesSync(join(dir, 'tree/sub/deep.txt'), new Date('2005-03-18T01:58:31Z'), new Date('2005-03-18T01:58:31Z'));
  utimesSync(join(dir, 'tree/sub'), new Date('2004-01-10T13:37:04Z'), new Date('2004-01-10T13:37:04Z'));
  // The directory COPY fills takes the source directory's time too (fsutil's copy).
  utimesSync(join(dir, 'tree'), new Date('2012-04-02T02:22:13Z'), new Date('2012-04-02T02:22:13Z'));
  assert.equal(spawnSync('touch', ['-h', '-d', '@1000000000', join(dir, 'tree/link')]).status, 0);

  const image = `${cluster.registry.host}/mtime/app:1`;
  const request = { platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }] };
  const built = await solve(cluster, dir, request);
  assert.equal(built.error?.message, undefined, built.logs);
  const times = await layerTimes(image, built.result!.images[0]!.manifestDigest);
  assert.deepEqual(
    ['old.txt', 'tree', 'tree/sub/deep.txt', 'tree/sub', 'tree/link'].map((p) => `${p} ${times.get(p)}`),
    ['old.txt 2001-09-09 01:46:40', 'tree 2012-04-02 02:22:13', 'tree/sub/deep.txt 2005-03-18 01:58:31', 'tree/sub 2004-01-10 13:37:04', 'tree/link 2001-09-09 01:46:40'],
  );

  // Only a time changed: BuildKit keys COPY on contents and headers without mtime, so the step
  // (and the image) comes from the cache.
  utimesSync(join(dir, 'old.txt'), new Date('2010-01-01T00:00:00Z'), new Date('2010-01-01T00:00:00Z'));
  const again = await solve(cluster, dir, request);
  assert.equal(again.error?.message, undefined, again.logs);
  assert.equal(again.result!.verticesCached, again.result!.verticesTotal);
  assert.equal(again.result!.images[0]!.manifestDigest, built.result!.images[0]!.manifestDigest);
});
