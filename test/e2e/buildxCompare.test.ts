// Issue 17 acceptance, side by side: the same `docker buildx build` flags against the reference
// buildkitd (a remote-driver builder on its socket) and against a real cluster's BuildKit
// endpoint; each output tree must be the same (paths, file types, contents and modes).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lutimesSync, mkdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceTools } from '@buildyard/testkit';
import { startComparison, tree, type Comparison } from './buildxComparison.js';

const tools = referenceTools('docker-buildx', 'buildkitd', 'buildctl');
const skip = tools.missing ?? false;
let c: Comparison;

before(async () => { if (!skip) c = await startComparison(tools.paths['docker-buildx']!, 2); });
after(async () => { await c?.stop(); });

/** The same buildx build on both builders, each into its own dest (a type=local tree unless `output` says); answers what `read` makes of each. */
async function both<T = string[]>(dir: string, flags: string[], read: (dest: string) => T = tree as (dest: string) => T, output = (dest: string) => `type=local,dest=${dest}`): Promise<{ ours: T; reference: T }> {
  const got: Record<string, T> = {};
  for (const builder of ['reference', 'ours']) {
    const dest = join(c.work, `${dir.split('/').pop()}-${builder}`);
    const run = await c.buildx('--builder', builder, 'build', '--progress', 'plain', ...flags, '-o', output(dest), dir);
    assert.equal(run.code, 0, `${builder}:\n${run.stderr}`);
    got[builder] = read(dest);
  }
  return { ours: got.ours!, reference: got.reference! };
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

/** A Dockerfile in `dir` from the cluster's busybox (which both builders pull) with `steps`. */
function writeDockerfile(dir: string, ...steps: string[]): void {
  writeFileSync(join(dir, 'Dockerfile'), [`FROM ${c.cluster.busybox.reference}`, ...steps, ''].join('\n'));
}

/** The linux/amd64 image's manifest and config blob in an OCI layout tar (an index with attestations, or one manifest). */
function imageIn(ociTar: string): { manifest: { mediaType: string; config: { mediaType: string }; layers: Array<{ mediaType: string; digest: string }> }; config: Buffer } {
  const dir = `${ociTar}.d`;
  mkdirSync(dir);
  execFileSync('tar', ['-xf', ociTar, '-C', dir]);
  const blob = (digest: string) => readFileSync(join(dir, 'blobs/sha256', digest.slice('sha256:'.length)));
  let doc = JSON.parse(blob(JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')).manifests[0].digest).toString());
  if (doc.manifests) doc = JSON.parse(blob(doc.manifests.find((m: { platform?: { architecture?: string } }) => m.platform?.architecture === 'amd64').digest).toString());
  return { manifest: doc, config: blob(doc.config.digest) };
}

const configBlob = (ociTar: string) => imageIn(ociTar).config;

/** The linux/amd64 image's rootfs.diff_ids in an OCI layout tar. */
function diffIDs(ociTar: string): string[] {
  return JSON.parse(configBlob(ociTar).toString()).rootfs.diff_ids;
}

test('COPY and RUN steps give byte-identical layers to buildkitd\'s (the same diffIDs): files, directories, symlinks, --chmod, long, split and non-ASCII names, big owner ids, walk order', { skip }, async () => {
  const dir = join(c.work, 'layers');
  const deep = `${'d'.repeat(60)}/${'e'.repeat(70)}`; // with the file below: over 100 bytes, USTAR's prefix holds it
  mkdirSync(join(dir, 'tree/sub'), { recursive: true });
  mkdirSync(join(dir, 'long', deep), { recursive: true });
  mkdirSync(join(dir, 'uni/café'), { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'tree/sub/deep'), 'deep\n');
  // Walk order: sub's children before sub-b and sub.c ('-' and '.' sort below '/').
  writeFileSync(join(dir, 'tree/sub-b'), 'b\n');
  writeFileSync(join(dir, 'tree/sub.c'), 'c\n');
  symlinkSync('sub/deep', join(dir, 'tree/link'));
  writeFileSync(join(dir, 'long', deep, 'f'.repeat(90)), 'split\n');
  writeFileSync(join(dir, 'long', 'x'.repeat(120)), 'a PAX path\n');
  writeFileSync(join(dir, 'uni/café/naïve.txt'), 'non-ASCII\n');
  const paths = ['a.txt', 'tree/sub/deep', 'tree/sub', 'tree/sub-b', 'tree/sub.c', 'tree', `long/${deep}/${'f'.repeat(90)}`, `long/${deep}`, `long/${'d'.repeat(60)}`, `long/${'x'.repeat(120)}`, 'long', 'uni/café/naïve.txt', 'uni/café', 'uni'];
  for (const p of paths) utimesSync(join(dir, p), 1_577_836_800, 1_577_836_800);
  lutimesSync(join(dir, 'tree/link'), 1_577_836_800, 1_577_836_800);
  writeDockerfile(dir,
    'COPY a.txt /a.txt',
    'COPY tree /tree',
    'COPY --chmod=600 a.txt /b.txt',
    'COPY long /long',
    'COPY uni /uni',
    // 300000 fits USTAR's 7 octal digits, 3000000 needs a PAX record; a link target over 100 bytes.
    'RUN chown 300000:3000000 /long && touch -d @1500000000 /long',
    `RUN ln -s /${'t'.repeat(120)} /lnk && touch -h -d @1500000000 /lnk`,
  );
  const ids = await both(dir, ['--platform', 'linux/amd64'], diffIDs, (dest) => `type=oci,dest=${dest}`);
  assert.equal(ids.reference.length, 8);
  assert.deepEqual(ids.ours, ids.reference);
});

test('a RUN step that deletes writes its whiteouts where buildkitd does: each where the walk reaches the deleted name, an opaque directory\'s per entry', { skip }, async () => {
  const dir = join(c.work, 'whiteouts');
  mkdirSync(join(dir, 'tree/dir/sub'), { recursive: true });
  mkdirSync(join(dir, 'tree/gone'), { recursive: true });
  for (const f of ['tree/f1', 'tree/f2', 'tree/dir/sub/c', 'tree/gone/g']) writeFileSync(join(dir, f), `${f}\n`);
  writeDockerfile(dir,
    'COPY tree /tree',
    'RUN rm -rf /tree/gone /tree/dir /tree/f2 && mkdir /tree/dir && echo new > /tree/dir/n',
  );
  // Entry names only: buildkitd v0.11.6 dates a whiteout "now" (current BuildKit: 1970, as Buildyard).
  const names = await both(dir, ['--platform', 'linux/amd64'], (dest) => {
    const { manifest } = imageIn(dest);
    const blob = join(`${dest}.d`, 'blobs/sha256', manifest.layers.at(-1)!.digest.slice('sha256:'.length));
    return execFileSync('tar', ['-tzf', blob], { encoding: 'utf8' }).split('\n').filter(Boolean);
  }, (dest) => `type=oci,dest=${dest}`);
  assert.deepEqual(names.reference, ['tree/', 'tree/dir/', 'tree/dir/n', 'tree/dir/.wh.sub', 'tree/.wh.f2', 'tree/.wh.gone']);
  assert.deepEqual(names.ours, names.reference);
});

test('the image config is byte-identical to buildkitd\'s (the same config digest, so image ID): key order, omitted fields, escapes and times as Go writes them', { skip }, async () => {
  const dir = join(c.work, 'config');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  utimesSync(join(dir, 'a.txt'), 1_577_836_800, 1_577_836_800);
  // Nothing here depends on the clock but through SOURCE_DATE_EPOCH (v0.11.6 does not clamp layer
  // times: no RUN, no WORKDIR); HEALTHCHECK and EXPOSE history read differently since v0.11.6.
  writeDockerfile(dir,
    'ENV A=1 B="two <words> & more"',
    'LABEL org.x=y 1=one',
    'COPY a.txt /a.txt',
    'USER 1000:1000',
    'VOLUME /data /b',
    'ENTRYPOINT ["/bin/sh","-c"]',
    'CMD ["echo hi"]',
    'STOPSIGNAL SIGTERM',
    'SHELL ["/bin/sh","-ec"]',
    'ONBUILD RUN echo x',
  );
  // buildinfo=false: v0.11.6 writes its build info into the config, current BuildKit no longer does.
  const configs = await both(dir, ['--platform', 'linux/amd64', '--provenance=false', '--build-arg', 'SOURCE_DATE_EPOCH=1600000000'], configBlob, (dest) => `type=oci,dest=${dest},buildinfo=false`);
  assert.equal(configs.ours.toString(), configs.reference.toString());
});

test('compression=, compression-level=, force-compression= and oci-mediatypes=false give the layers buildkitd gives: its own layers in that compression, the base image\'s too when forced; Docker\'s media types', { skip }, async () => {
  for (const [name, attrs] of [['zstd', 'compression=zstd,compression-level=9'], ['forced', 'compression=zstd,force-compression=true'], ['uncompressed', 'compression=uncompressed,force-compression=true'], ['docker-types', 'oci-mediatypes=false']] as const) {
    // A context of its own: buildkitd keeps the compression a layer was first exported in.
    const dir = join(c.work, `compress-${name}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'f.txt'), `${name}\n`);
    utimesSync(join(dir, 'f.txt'), 1_577_836_800, 1_577_836_800);
    writeDockerfile(dir, 'COPY f.txt /f.txt');
    const layers = await both(dir, ['--platform', 'linux/amd64', '--provenance=false'], (dest) => {
      const { manifest, config } = imageIn(dest);
      const diffIDs: string[] = JSON.parse(config.toString()).rootfs.diff_ids;
      // Compressed bytes differ between Go's and zlib/zstd's compressors; uncompressed ones are the tars.
      return [`${manifest.mediaType} ${manifest.config.mediaType}`, ...manifest.layers.map((l, i) => `${l.mediaType} ${diffIDs[i]}${name === 'uncompressed' ? ` ${l.digest}` : ''}`)];
    }, (dest) => `type=oci,dest=${dest},${attrs}`);
    assert.deepEqual(layers.ours, layers.reference, name);
  }
});
