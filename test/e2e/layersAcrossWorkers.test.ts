// Same build, same bytes on any worker (issue 15 item 3): a Dockerfile (context files, an
// archive, a download, a RUN, COPY --from) is built from scratch on one worker, then again from
// scratch on a second worker with fresh state. With SOURCE_DATE_EPOCH and rewrite-timestamp=true
// every layer comes out byte-identical (mtimes after it are clamped, as BuildKit's); without it only
// the times of what the steps touched differ, as between two BuildKit daemons. Nothing else of
// the worker may leak in: its state dir, the mount stubs a RUN leaves behind, owners, xattrs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { solve } from './grpcClient.js';
import { useOutsideCluster } from './security/outsideCluster.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster and a network namespace)';

const env = useOutsideCluster('layers-across-workers', !skip);

/** Every layer of the pushed image, in order. */
async function layersOf(image: string, manifestDigest: string): Promise<string[]> {
  const repo = image.slice(image.indexOf('/') + 1).replace(/:[^:/]+$/, '');
  const res = await fetch(`http://${env.cluster.registry.host}/v2/${repo}/manifests/${manifestDigest}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  assert.equal(res.status, 200, `manifest ${manifestDigest}`);
  return ((await res.json()) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
}

/** A layer's entries as `tar -tv` lists them (for the failure message: what differs). */
async function listing(image: string, digest: string): Promise<string> {
  const repo = image.slice(image.indexOf('/') + 1).replace(/:[^:/]+$/, '');
  const blob = Buffer.from(await (await fetch(`http://${env.cluster.registry.host}/v2/${repo}/blobs/${digest}`)).arrayBuffer());
  return spawnSync('tar', ['-tvz', '--full-time', '--numeric-owner'], { input: blob, encoding: 'utf8' }).stdout;
}

test('a Dockerfile built from scratch on two workers gives byte-identical layers', { skip }, async () => {
  const base = env.cluster.busybox.reference;
  const dir = env.contexts.make('app', `FROM ${base} AS build
COPY src/ /src/
RUN mkdir -p /out && cp -a /src/. /out/ && echo built > /out/built && touch -h -d @1600000000 /out /out/*
FROM ${base}
COPY --from=build /out /app
COPY --chmod=755 --chown=1:1 tool.sh /usr/local/bin/tool
ADD files.tar /opt/
ADD http://${env.outside.web}/hello.txt /downloads/
COPY src/a.txt /app/a-again.txt
WORKDIR /app
`);
  const fixed = new Date('2020-09-13T12:26:40Z');
  mkdirSync(join(dir, 'src/sub'), { recursive: true });
  writeFileSync(join(dir, 'src/a.txt'), 'a\n');
  writeFileSync(join(dir, 'src/sub/b.txt'), 'b\n');
  writeFileSync(join(dir, 'tool.sh'), '#!/bin/sh\necho tool\n');
  mkdirSync(join(dir, 'tarred'));
  writeFileSync(join(dir, 'tarred/inside.txt'), 'inside\n');
  for (const p of ['src/a.txt', 'src/sub/b.txt', 'src/sub', 'src', 'tool.sh', 'tarred/inside.txt', 'tarred']) utimesSync(join(dir, p), fixed, fixed);
  const tar = spawnSync('tar', ['-cf', join(dir, 'files.tar'), '--mtime=@1600000000', '--owner=0', '--group=0', '--numeric-owner', '-C', dir, 'tarred'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);

  const image = `${env.cluster.registry.host}/across/app:1`;
  const request = (buildArgs: Record<string, string>, attrs: Record<string, string> = {}) => ({ platforms: ['linux/amd64'], noCache: true, buildArgs, outputs: [{ type: 'image', attrs: { name: image, push: 'true', ...attrs } }] });
  const pinned = request({ SOURCE_DATE_EPOCH: '1600000000' }, { 'rewrite-timestamp': 'true' });
  const unpinned = request({});
  const builds = async () => {
    const out: string[][] = [];
    for (const r of [pinned, unpinned]) {
      const built = await solve(env.cluster, dir, r);
      assert.equal(built.error?.message, undefined, built.logs);
      out.push(await layersOf(image, built.result!.images[0]!.manifestDigest));
    }
    return out;
  };
  const [pinnedA, unpinnedA] = await builds();
  // The second worker starts with empty state (no snapshots, no downloads); the first is gone,
  // so every step of the second builds runs there.
  await env.cluster.workers[0]!.process.stop();
  await env.cluster.addWorker('worker-second');
  const [pinnedB, unpinnedB] = await builds();

  // With SOURCE_DATE_EPOCH and rewrite-timestamp, byte for byte the same.
  assert.equal(pinnedA!.length, pinnedB!.length);
  const differing = await Promise.all(pinnedA!.map(async (d, i) => (d === pinnedB![i] ? null : `layer ${i}:\n${await listing(image, d)}---\n${await listing(image, pinnedB![i]!)}`)));
  assert.deepEqual(differing.filter(Boolean), []);
  // Without it, directories a step changed carry the time it ran, as in BuildKit; nothing else
  // of the worker shows: the same entries, owners, modes, sizes and contents.
  const timeless = async (d: string) => (await listing(image, d)).replace(/ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d /g, ' ');
  assert.deepEqual(await Promise.all(unpinnedA!.map(timeless)), await Promise.all(unpinnedB!.map(timeless)));
});
