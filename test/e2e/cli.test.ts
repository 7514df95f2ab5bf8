// The real `buildyard` CLI against a real cluster (issues 6 and 7): every flag group, the
// outputs checked with skopeo and umoci, and the tty view in a pseudo-terminal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { existsSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster, type Cluster, appCommand, pushCraftedImage, testWorkDir } from '@buildyard/testkit';

const repoRoot = resolve(import.meta.dirname, '../..');
const example = join(repoRoot, 'examples/multi-stage');
let cluster: Cluster;
let work: string;

before(async () => {
  cluster = await startCluster({ workers: 2 });
  work = testWorkDir('buildyard-cli-e2e-');
});
after(async () => { await cluster?.stop(); });

const cliEnv = (env: Record<string, string> = {}) => ({ ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, ...env });

function cli(args: string[], options: { env?: Record<string, string>; input?: string } = {}): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, appCommand('cli', ...args), { cwd: work, encoding: 'utf8', input: options.input, timeout: 180_000, env: cliEnv(options.env) });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** As cli(), without blocking this process (which may serve the CLI something meanwhile). */
async function cliAsync(args: string[], env: Record<string, string> = {}): Promise<{ status: number; stderr: string }> {
  const child = spawn(process.execPath, appCommand('cli', ...args), { cwd: work, env: cliEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const [code] = await once(child, 'close') as [number | null];
  return { status: code ?? -1, stderr };
}

function skopeo(...args: string[]): string {
  return execFileSync('skopeo', args, { encoding: 'utf8' });
}

const base = () => `BASE=${cluster.busybox.reference}`;

test('build --push for two platforms; local, oci and tar outputs hold what was pushed (skopeo, umoci)', () => {
  const image = `${cluster.registry.host}/e2e/example:1`;
  const meta = join(work, 'meta.json');
  const run = cli(['build', '--progress', 'plain', '--platform', 'linux/amd64,linux/arm64', '--build-arg', base(), '-t', image, '--push',
    '-o', `type=local,dest=${join(work, 'local')}`, '-o', `type=oci,dest=${join(work, 'out.oci.tar')}`, '--metadata-file', meta, example]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /#\d+ \[client 3\/3\] RUN/, 'plain progress in buildx style');
  assert.match(run.stderr, /\(linux\/arm64 on worker-\d \(emulated\)\)/, 'the platform, worker and emulation are shown');

  const index = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${image}`));
  assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
  // buildx's default provenance (mode=min) adds one attestation manifest (platform unknown/unknown) per image.
  assert.deepEqual(index.manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture).sort(), ['amd64', 'arm64', 'unknown', 'unknown']);
  const metadata = JSON.parse(readFileSync(meta, 'utf8'));
  const pushedDigest = JSON.parse(skopeo('inspect', '--tls-verify=false', `docker://${image}`)).Digest;
  assert.equal(metadata['containerimage.digest'], pushedDigest, 'the metadata file has the pushed digest');

  const layout = join(work, 'copied');
  skopeo('copy', '--all', '--src-tls-verify=false', `docker://${image}`, `oci:${join(work, 'copied-all')}:latest`);
  for (const arch of ['amd64', 'arm64']) {
    const bundle = join(work, `bundle-${arch}`);
    skopeo('copy', '--src-tls-verify=false', '--override-arch', arch, `docker://${image}`, `oci:${layout}:${arch}`);
    execFileSync('umoci', ['unpack', '--image', `${layout}:${arch}`, bundle], { stdio: 'pipe' });
    const rootfs = join(bundle, 'rootfs');
    assert.match(readFileSync(join(rootfs, 'etc/build-info'), 'utf8'), arch === 'amd64' ? /x86_64/ : /aarch64/);
    const server = readFileSync(join(rootfs, 'usr/local/bin/server'));
    assert.deepEqual(readFileSync(join(work, 'local', `linux_${arch}`, 'usr/local/bin/server')), server, `type=local holds the pushed ${arch} files`);
    const config = JSON.parse(skopeo('inspect', '--config', '--tls-verify=false', '--override-arch', arch, `docker://${image}`));
    assert.deepEqual(config.config.Entrypoint, ['/usr/local/bin/server']);
    assert.deepEqual(config.config.Cmd, ['--port', '8080']);
    assert.equal(config.config.User, 'nobody');
    assert.deepEqual(Object.keys(config.config.ExposedPorts), ['8080/tcp']);
    assert.equal(config.config.Labels['org.opencontainers.image.title'], 'buildyard example');
    assert.ok(config.config.Env.some((e: string) => e.startsWith('PATH=')));
    assert.ok(config.history.some((h: { created_by: string; empty_layer?: boolean }) => h.created_by.includes('EXPOSE') && h.empty_layer));
  }
  const ociIndex = JSON.parse(skopeo('inspect', '--raw', `oci-archive:${join(work, 'out.oci.tar')}`));
  assert.deepEqual(ociIndex, index, 'type=oci holds the same index as the registry');
});

test('push-by-digest, as a CI matrix builds one platform per job: each image pushed under its digest, no tag moved; imagetools create merges them', () => {
  const repo = `${cluster.registry.host}/e2e/by-digest`;
  const digests = ['linux/amd64', 'linux/arm64'].map((platform) => {
    const meta = join(work, `by-digest-${platform.replace('/', '-')}.json`);
    const run = cli(['build', '--progress', 'plain', '--platform', platform, '--build-arg', base(), '--metadata-file', meta,
      '-o', `type=image,name=${repo},push-by-digest=true,name-canonical=true,push=true`, example]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, new RegExp(`pushed ${repo.replace(/\./g, '\\.')}@sha256:[0-9a-f]{64}\n`));
    return JSON.parse(readFileSync(meta, 'utf8'))['containerimage.digest'] as string;
  });
  for (const digest of digests) assert.match(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${repo}@${digest}`), /"schemaVersion"/);
  // No tag was pushed: the registry knows no tags of the repository (distribution answers 404).
  assert.throws(() => execFileSync('skopeo', ['list-tags', '--tls-verify=false', `docker://${repo}`], { stdio: 'pipe' }), /404/);
  const merged = cli(['imagetools', 'create', '-t', `${repo}:1`, ...digests.map((d) => `${repo}@${d}`)]);
  assert.equal(merged.status, 0, merged.stderr);
  const index = JSON.parse(skopeo('inspect', '--raw', '--tls-verify=false', `docker://${repo}:1`));
  assert.deepEqual(index.manifests.filter((m: { platform: { os: string } }) => m.platform.os === 'linux').map((m: { platform: { architecture: string } }) => m.platform.architecture).sort(), ['amd64', 'arm64']);
  const tagged = cli(['build', '--platform', 'linux/amd64', '--build-arg', base(), '-o', `type=image,name=${repo}:v2,push-by-digest=true,push=true`, example]);
  assert.equal(tagged.status, 2, 'a usage error');
  assert.match(tagged.stderr, /output 1 \(type=image\): can't push tagged ref .*by-digest:v2 by digest: name the repository only/);
});

test('type=docker and type=tar outputs of one platform, and -q printing only the digest', () => {
  const out = cli(['build', '-q', '--platform', 'linux/amd64', '--build-arg', base(), '-t', 'e2e/example:docker',
    '-o', `type=docker,dest=${join(work, 'docker.tar')}`, example]);
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  const inspected = JSON.parse(skopeo('inspect', `docker-archive:${join(work, 'docker.tar')}`));
  assert.equal(inspected.Architecture, 'amd64');
  // As current BuildKit's docker exporter (containerd's archive writer): an OCI layout with
  // compressed blobs and docker load's manifest.json; the name normalised and the creation time.
  // The CLI's default provenance (buildx's mode=min) makes the top an index of the image and its
  // attestation, the digest the build printed; manifest.json names the image inside.
  const member = (name: string) => JSON.parse(execFileSync('tar', ['-xOf', join(work, 'docker.tar'), name], { encoding: 'utf8' }));
  const [entry] = member('index.json').manifests;
  assert.equal(entry.digest, out.stdout.trim());
  assert.equal(entry.mediaType, 'application/vnd.oci.image.index.v1+json');
  const inner = member(`blobs/sha256/${entry.digest.slice(7)}`).manifests;
  assert.deepEqual(inner.map((m: { platform: { architecture: string } }) => m.platform.architecture), ['amd64', 'unknown']);
  assert.equal(entry.annotations['io.containerd.image.name'], 'docker.io/e2e/example:docker');
  assert.equal(entry.annotations['org.opencontainers.image.ref.name'], 'docker');
  assert.match(entry.annotations['org.opencontainers.image.created'], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  const [loaded] = member('manifest.json');
  assert.deepEqual(loaded.RepoTags, ['e2e/example:docker']);
  assert.equal(loaded.Config, `blobs/sha256/${member(`blobs/sha256/${inner[0].digest.slice(7)}`).config.digest.slice(7)}`);
  const top = execFileSync('tar', ['-xOf', join(work, 'docker.tar'), loaded.Layers.at(-1)]);
  assert.deepEqual([...top.subarray(0, 2)], [0x1f, 0x8b], 'layers stay compressed');
  const tar = cli(['build', '-q', '--platform', 'linux/amd64', '--build-arg', base(), '-o', `type=tar,dest=${join(work, 'fs.tar')}`, example]);
  assert.equal(tar.status, 0, tar.stderr);
  const listing = execFileSync('tar', ['-tf', join(work, 'fs.tar')], { encoding: 'utf8' });
  assert.match(listing, /usr\/local\/bin\/server/);
});

test('type=oci,tar=false adds images to an OCI layout directory, as BuildKit\'s client store: the entries already there stay, a name built again is replaced; skopeo reads each', () => {
  const layout = join(work, 'layout');
  mkdirSync(layout);
  const kept = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'0'.repeat(64)}`, size: 1, annotations: { 'org.opencontainers.image.ref.name': 'kept' } };
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [kept] }));
  const build = (platform: string, ...args: string[]) => {
    const out = cli(['build', '-q', '--provenance=false', '--platform', platform, '--build-arg', base(), ...args, '-o', `type=oci,dest=${layout},tar=false`, example]);
    assert.equal(out.status, 0, out.stderr);
    return out.stdout.trim();
  };
  const amd64 = build('linux/amd64', '-t', 'e2e/example:layout');
  const arm64 = build('linux/arm64');
  assert.equal(build('linux/amd64', '-t', 'e2e/example:layout'), amd64);
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const entries = index.manifests.map((m: { digest: string; annotations: Record<string, string> }) => [m.digest, m.annotations['org.opencontainers.image.ref.name'], m.annotations['io.containerd.image.name']]);
  assert.deepEqual(entries, [[kept.digest, 'kept', undefined], [arm64, 'latest', undefined], [amd64, 'layout', 'docker.io/e2e/example:layout']]);
  assert.equal(readFileSync(join(layout, 'oci-layout'), 'utf8'), '{"imageLayoutVersion":"1.0.0"}');
  assert.equal(JSON.parse(skopeo('inspect', `oci:${layout}:layout`)).Architecture, 'amd64');
  assert.equal(JSON.parse(skopeo('inspect', `oci:${layout}:latest`)).Architecture, 'arm64');
  for (const name of readdirSync(join(layout, 'blobs/sha256'))) {
    assert.equal(execFileSync('sha256sum', [join(layout, 'blobs/sha256', name)], { encoding: 'utf8' }).split(' ')[0], name);
  }
  const bad = cli(['build', '-o', `type=oci,dest=-,tar=false`, example]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /tar=false writes an OCI layout directory, not a stream; give dest=DIR/);
});

test('type=local keeps the image\'s times (a COPY\'d context file has the client\'s); with SOURCE_DATE_EPOCH every local and tar entry has it, as BuildKit', () => {
  const context = mkdtempSync(join(work, 'times-'));
  mkdirSync(join(context, 'tree/sub'), { recursive: true });
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nCOPY tree /tree\n');
  writeFileSync(join(context, 'tree/old.txt'), 'old\n');
  writeFileSync(join(context, 'tree/sub/deep.txt'), 'deep\n');
  symlinkSync('old.txt', join(context, 'tree/link'));
  utimesSync(join(context, 'tree/old.txt'), 1_000_000_000, 1_000_000_000);
  utimesSync(join(context, 'tree/sub/deep.txt'), 1_111_111_111, 1_111_111_111);
  lutimesSync(join(context, 'tree/link'), 1_050_000_000, 1_050_000_000);
  utimesSync(join(context, 'tree/sub'), 1_222_222_222, 1_222_222_222);
  utimesSync(join(context, 'tree'), 1_333_333_333, 1_333_333_333);
  /** path -> [mtime, atime] of every entry under `dir`, links not followed; find stats each before reading it (which would set its atime). */
  const times = (dir: string) => Object.fromEntries(execFileSync('find', [dir, '-mindepth', '1', '-printf', '%P %T@ %A@\\n'], { encoding: 'utf8' })
    .trim().split('\n').sort().map((l) => { const [p, m, a] = l.split(' '); return [p, [Number(m), Number(a)]]; }));

  const kept = join(work, 'times-out');
  const run = cli(['build', '--progress', 'plain', '-o', `type=local,dest=${kept}`, context]);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(times(kept), {
    tree: [1_333_333_333, 1_333_333_333], 'tree/link': [1_050_000_000, 1_050_000_000], 'tree/old.txt': [1_000_000_000, 1_000_000_000],
    'tree/sub': [1_222_222_222, 1_222_222_222], 'tree/sub/deep.txt': [1_111_111_111, 1_111_111_111],
  });

  const epoch = join(work, 'times-epoch');
  const tar = join(work, 'times-epoch.tar');
  const pinned = cli(['build', '--progress', 'plain', '--build-arg', 'SOURCE_DATE_EPOCH=1700000000', '-o', `type=local,dest=${epoch}`, '-o', `type=tar,dest=${tar}`, context]);
  assert.equal(pinned.status, 0, pinned.stderr);
  const all = times(epoch);
  assert.deepEqual(Object.keys(all), ['tree', 'tree/link', 'tree/old.txt', 'tree/sub', 'tree/sub/deep.txt']);
  for (const [path, t] of Object.entries(all)) assert.deepEqual(t, [1_700_000_000, 1_700_000_000], path);
  const listing = execFileSync('tar', ['-tv', '--full-time', '-f', tar], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } }).trim().split('\n');
  assert.equal(listing.length, 5, listing.join('\n'));
  for (const line of listing) assert.match(line, / 2023-11-14 22:13:20 /);
});

test('SOURCE_DATE_EPOCH leaves the base image\'s history times alone, newer ones too (current BuildKit); new entries and the image say the epoch, as does an output\'s source-date-epoch', () => {
  const baseContext = mkdtempSync(join(work, 'epoch-base-'));
  writeFileSync(join(baseContext, 'Dockerfile'), `ARG BASE\nFROM \${BASE}\nRUN echo base > /base\nENV B=1\n`);
  const baseImage = `${cluster.registry.host}/e2e/epoch-base:1`;
  const pushedBase = cli(['build', '--progress', 'plain', '--build-arg', base(), '-t', baseImage, '--push', '--provenance', 'false', baseContext]);
  assert.equal(pushedBase.status, 0, pushedBase.stderr);
  type Config = { created: string; history: Array<{ created?: string; created_by?: string }> };
  const configOf = (ref: string) => JSON.parse(skopeo('inspect', '--config', '--tls-verify=false', `docker://${ref}`)) as Config;
  const baseHistory = configOf(baseImage).history;
  const built = baseHistory.filter((h) => /echo base|ENV B=1/.test(h.created_by ?? ''));
  assert.equal(built.length, 2);
  for (const h of built) assert.ok(Date.parse(h.created!) > 1_500_000_000_000, `the base's own steps are dated by its build: ${h.created}`);

  const context = mkdtempSync(join(work, 'epoch-child-'));
  writeFileSync(join(context, 'Dockerfile'), `FROM ${baseImage}\nRUN echo child > /child\nENV C=1\n`);
  const epoch = 1_500_000_000_000;
  const times = (history: Config['history']) => history.map((h) => Date.parse(h.created!));
  const expectHistory = (cfg: Config) => {
    assert.deepEqual(times(cfg.history.slice(0, baseHistory.length)), times(baseHistory), 'the base image\'s entries keep their times');
    assert.deepEqual(times(cfg.history.slice(baseHistory.length)), [epoch, epoch], 'new entries say the epoch');
    assert.equal(Date.parse(cfg.created), epoch);
  };
  for (const [tag, flags] of [['arg', ['--build-arg', 'SOURCE_DATE_EPOCH=1500000000', '-t']], ['attr', ['-o']]] as const) {
    const image = `${cluster.registry.host}/e2e/epoch-child:${tag}`;
    const target = tag === 'arg' ? [image, '--push'] : [`type=registry,name=${image},source-date-epoch=1500000000`];
    const run = cli(['build', '--progress', 'plain', '--provenance', 'false', ...flags, ...target, context]);
    assert.equal(run.status, 0, run.stderr);
    expectHistory(configOf(image));
  }
});

test('a base layer naming paths above or outside its root, or writing through its own link, is unpacked inside it, as BuildKit; a layer that fails to export fails the build in one line, not silently', async () => {
  const image = `${cluster.registry.host}/e2e/crafted:absolute`;
  await pushCraftedImage(image, [{ name: '/abs/f', data: 'abs\n' }, { name: '../up', data: 'up\n' }, { name: 'a/../b', data: 'b\n' }, { name: 'h', type: 'link', linkname: '../../abs/f' }]);
  const context = mkdtempSync(join(work, 'crafted-'));
  // The worker unpacks it (COPY --from), the frontend's exporter flattens it (type=local).
  writeFileSync(join(context, 'Dockerfile'), `FROM ${image} AS crafted\nFROM ${cluster.busybox.reference}\nCOPY --from=crafted /abs/f /up /b /h /out/\nRUN cat /out/f /out/up /out/b /out/h > /out/all\nFROM crafted\nCOPY --from=1 /out/all /all\n`);
  const out = join(work, 'crafted-out');
  const run = cli(['build', '--progress', 'plain', '-o', `type=local,dest=${out}`, context]);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(readFileSync(join(out, 'all'), 'utf8'), 'abs\nup\nb\nabs\n');
  assert.deepEqual(readdirSync(out).sort(), ['abs', 'all', 'b', 'h', 'up']);
  assert.equal(readFileSync(join(out, 'abs/f'), 'utf8'), 'abs\n');
  assert.equal(statSync(join(out, 'h')).ino, statSync(join(out, 'abs/f')).ino, 'the hardlink stays one file, as BuildKit\'s local export links it');

  // A layer writing through its own symlink writes inside the image, as containerd unpacks it:
  // `link -> /tmp`, then `link/evil` is the image's /tmp/evil, on the worker and in the export.
  const through = `${cluster.registry.host}/e2e/crafted:through-link`;
  await pushCraftedImage(through, [{ name: 'link', type: 'symlink', linkname: '/tmp' }, { name: 'link/evil', data: 'x\n' }]);
  const throughContext = mkdtempSync(join(work, 'crafted-link-'));
  writeFileSync(join(throughContext, 'Dockerfile'), `FROM ${through} AS crafted\nFROM ${cluster.busybox.reference}\nCOPY --from=crafted /tmp/evil /seen\nFROM crafted\nCOPY --from=1 /seen /seen\n`);
  const throughOut = join(work, 'crafted-link-out');
  const followed = cli(['build', '--progress', 'plain', '-o', `type=local,dest=${throughOut}`, throughContext]);
  assert.equal(followed.status, 0, followed.stderr);
  assert.equal(readFileSync(join(throughOut, 'tmp/evil'), 'utf8'), 'x\n');
  assert.equal(readFileSync(join(throughOut, 'seen'), 'utf8'), 'x\n');
  assert.equal(existsSync('/tmp/evil'), false);

  // A malformed layer (a hardlink to nothing): the build's image is made (no step unpacks it)
  // but its local export fails: exit 1 naming the output, and no "lost connection".
  const bad = `${cluster.registry.host}/e2e/crafted:dangling-hardlink`;
  await pushCraftedImage(bad, [{ name: 'h', type: 'link', linkname: 'missing' }]);
  const badContext = mkdtempSync(join(work, 'crafted-bad-'));
  writeFileSync(join(badContext, 'Dockerfile'), `FROM ${bad}\nLABEL x=1\n`);
  const failed = cli(['build', '--progress', 'plain', '-o', `type=local,dest=${join(work, 'crafted-bad-out')}`, badContext]);
  assert.equal(failed.status, 1, failed.stderr);
  assert.match(failed.stderr, /ERROR: .*exporting output 1 \(type=local\): layer entry "h" is a hardlink to "missing", which does not exist/);
  assert.doesNotMatch(failed.stderr, /lost the connection/);
});

test('a base image whose later layer hardlinks through its earlier layer\'s link to a worker file fails as malformed: the worker copies nothing of its own into the image', () => {
  // What the link points at: a file of the worker's machine (the worker runs on this one).
  const host = mkdtempSync(join(work, 'worker-secrets-'));
  writeFileSync(join(host, 'secret'), 'worker secret\n');
  const image = `${cluster.registry.host}/e2e/crafted:hardlink-through-lower-link`;
  return (async () => {
    await pushCraftedImage(image, [[{ name: 'abs', type: 'symlink', linkname: host }], [{ name: 'stolen', type: 'link', linkname: 'abs/secret' }]]);
    const context = mkdtempSync(join(work, 'crafted-steal-'));
    writeFileSync(join(context, 'Dockerfile'), `FROM ${image} AS crafted\nFROM ${cluster.busybox.reference}\nCOPY --from=crafted /stolen /stolen\nRUN cat /stolen\n`);
    const run = cli(['build', '--progress', 'plain', context]);
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /layer entry "stolen" is a hardlink to "abs\/secret", which does not exist: the layer is malformed/);
    assert.doesNotMatch(run.stdout + run.stderr, /worker secret/);
  })();
});

/**
 * A TCP proxy to the frontend that, once, cuts the connection carrying `marker` from the
 * frontend to the client (before forwarding it): a stream cut at a chosen event, not a time.
 */
async function cuttingProxy(target: string, marker: Buffer): Promise<{ builder: string; cut: Promise<void>; close(): void }> {
  const [host, port] = target.split(':');
  let markCut!: () => void;
  const cut = new Promise<void>((ok) => { markCut = ok; });
  let done = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(port), host);
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => undefined); }
    client.pipe(upstream);
    let tail = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      const seen = Buffer.concat([tail, chunk]);
      if (!done && seen.includes(marker)) {
        done = true;
        client.destroy();
        upstream.destroy();
        markCut();
        return;
      }
      tail = seen.subarray(Math.max(0, seen.length - marker.length));
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { builder: `tcp://127.0.0.1:${(server.address() as AddressInfo).port}`, cut, close: () => { server.close(); for (const s of sockets) s.destroy(); } };
}

test('a connection cut while a local output streams back fails the build in one line, though the build finished: an attached client cannot receive the files', async () => {
  const context = mkdtempSync(join(work, 'cut-'));
  // The marker file's name appears first in the export: the step's own name has it unexpanded.
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN touch "/cut-marker-$(echo 7f3a)"\n`);
  const proxy = await cuttingProxy(cluster.address, Buffer.from('cut-marker-7f3a'));
  try {
    const dest = join(work, 'cut-out');
    const run = await cliAsync(['build', '--progress', 'plain', '-o', `type=local,dest=${dest}`, context], { BUILDYARD_BUILDER: proxy.builder });
    await proxy.cut;
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /WARNING: lost the connection to tcp:\/\/127\.0\.0\.1:\d+; attaching to build \S+ again/);
    assert.match(run.stderr, /ERROR: build: build \S+ finished, but the connection to tcp:\/\/127\.0\.0\.1:\d+ broke \(.+\) and type=local,dest=\S+ comes only over the connection that started the build, so it was not written; run the build again \(its steps are cached\)/);
    assert.equal(existsSync(join(dest, 'cut-marker-7f3a')), false);
  } finally {
    proxy.close();
  }
});

test('--secret reaches RUN --mount=type=secret and never the image; --build-arg, --target and --label apply', () => {
  const context = mkdtempSync(join(work, 'secret-'));
  writeFileSync(join(context, 'Dockerfile'), `ARG BASE\nFROM \${BASE} AS first\nARG GREETING\nRUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = "$(echo aHVudGVyMg== | base64 -d)" && echo "$GREETING" > /greeting\nFROM first AS unused\nRUN exit 1\n`);
  writeFileSync(join(work, 'token.txt'), 'hunter2');
  const run = cli(['build', '--progress', 'plain', '--build-arg', base(), '--build-arg', 'GREETING', '--target', 'first', '--label', 'team=build',
    '--secret', `id=token,src=${join(work, 'token.txt')}`, '-o', `type=local,dest=${join(work, 'secret-out')}`, context], { env: { GREETING: 'from-env' } });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(readFileSync(join(work, 'secret-out/greeting'), 'utf8'), 'from-env\n', 'a bare --build-arg takes the environment');
  assert.ok(!existsSync(join(work, 'secret-out/run/secrets/token')));
  assert.ok(!run.stderr.includes('hunter2'), 'the secret is in no progress output');
});

test('--no-cache-filter runs the steps of the stages it names again and takes the others from the cache, as dockerfile2llb\'s ignoreCache', () => {
  const dir = join(work, 'no-cache-filter');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), [
    `FROM ${cluster.busybox.reference} AS deps`, `RUN echo deps-step-${process.pid}`,
    `FROM ${cluster.busybox.reference} AS other`, `RUN echo other-step-${process.pid}`,
    'FROM other', 'COPY --from=deps /bin/busybox /h', '',
  ].join('\n'));
  const first = cli(['build', '--progress', 'plain', dir]);
  assert.equal(first.status, 0, first.stderr);
  const again = cli(['build', '--progress', 'plain', '--no-cache-filter', 'DEPS', dir]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`#\\d+ [\\d.]+ deps-step-${process.pid}`), 'the named stage\'s RUN ran again');
  assert.match(again.stderr, new RegExp(`RUN echo other-step-${process.pid}[^\\n]*\\n#\\d+ CACHED`), 'the other stage came from the cache');
});

test('BUILDKIT_MULTI_PLATFORM=1 makes one platform\'s image an index of one, as dockerui; a value that is no bool, or false with two platforms, fails in one line', () => {
  const dir = join(work, 'multi-platform');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo one > /one\n`);
  const out = join(work, 'multi-platform.tar');
  const one = cli(['build', '-q', '--provenance=false', '--platform', 'linux/amd64', '--build-arg', 'BUILDKIT_MULTI_PLATFORM=1', '-o', `type=oci,dest=${out}`, dir]);
  assert.equal(one.status, 0, one.stderr);
  const member = (name: string) => JSON.parse(execFileSync('tar', ['-xOf', out, name], { encoding: 'utf8' }));
  const [top] = member('index.json').manifests;
  assert.equal(top.mediaType, 'application/vnd.oci.image.index.v1+json');
  assert.equal(top.digest, one.stdout.trim());
  assert.deepEqual(member(`blobs/sha256/${top.digest.slice(7)}`).manifests.map((m: { platform: { architecture: string } }) => m.platform.architecture), ['amd64']);
  const bad = cli(['build', '--build-arg', 'BUILDKIT_MULTI_PLATFORM=maybe', dir]);
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stderr, /invalid boolean value for multi-platform: maybe/);
  const conflict = cli(['build', '--platform', 'linux/amd64,linux/arm64', '--build-arg', 'BUILDKIT_MULTI_PLATFORM=false', dir]);
  assert.equal(conflict.status, 1, conflict.stderr);
  assert.match(conflict.stderr, /conflicting config: returning multiple target platforms is not allowed/);
});

test('# syntax= naming another frontend image (or BUILDKIT_SYNTAX) fails in one line rather than building something else; docker/dockerfile:1-labs builds', () => {
  const dir = join(work, 'syntax');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `# syntax=example.com/my/frontend:1\nFROM ${cluster.busybox.reference}\nINCLUDE+ other.Dockerfile\n`);
  const other = cli(['build', dir]);
  assert.equal(other.status, 1, other.stderr);
  assert.match(other.stderr, /# syntax=example\.com\/my\/frontend:1: frontend images are not supported; remove it or use docker\/dockerfile:1/);
  writeFileSync(join(dir, 'Dockerfile'), `# syntax=docker/dockerfile:1-labs\nFROM ${cluster.busybox.reference}\nRUN true\n`);
  assert.equal(cli(['build', dir]).status, 0);
  const arg = cli(['build', '--build-arg', 'BUILDKIT_SYNTAX=example.com/x:1', dir]);
  assert.equal(arg.status, 1, arg.stderr);
  assert.match(arg.stderr, /BUILDKIT_SYNTAX=example\.com\/x:1: frontend images are not supported/);
});

test('type=local,platform-split=false merges the platforms into one directory (as BuildKit\'s local exporter), each platform\'s files named apart', () => {
  const dir = join(work, 'platform-split');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference} AS b\nARG TARGETARCH\nRUN mkdir /out && echo "$TARGETARCH" > /out/app-$TARGETARCH\nFROM scratch\nCOPY --from=b /out/ /\n`);
  const dest = join(work, 'platform-split-out');
  const run = cli(['build', '-q', '--provenance=false', '--platform', 'linux/amd64,linux/arm64', '-o', `type=local,dest=${dest},platform-split=false`, dir]);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(readdirSync(dest).sort(), ['app-amd64', 'app-arm64']);
  assert.equal(readFileSync(join(dest, 'app-arm64'), 'utf8'), 'arm64\n');
});

test('a Dockerfile error exits 1 with the file, line and offending lines like buildx', () => {
  const context = mkdtempSync(join(work, 'bad-'));
  writeFileSync(join(context, 'Dockerfile'), 'FROM scratch\nFRM busybox\n');
  const run = cli(['build', '--progress', 'plain', context]);
  assert.equal(run.status, 1);
  assert.match(run.stderr, /Dockerfile:2/);
  assert.match(run.stderr, /did you mean FROM\?/);
  assert.match(run.stderr, />>> FRM busybox/);
});

test('a build reports the linter\'s warnings as current BuildKit does, and # check=error=true fails it before any step runs', () => {
  const context = mkdtempSync(join(work, 'lint-'));
  const dockerfile = `FROM ${cluster.busybox.reference} as base\nRUN echo ran > /ran\nCMD echo hi\n`;
  writeFileSync(join(context, 'Dockerfile'), dockerfile);
  const warned = cli(['build', '--progress', 'plain', context]);
  assert.equal(warned.status, 0, warned.stderr);
  assert.match(warned.stderr, /2 warnings found:\n - FromAsCasing: 'as' and 'FROM' keywords' casing do not match \(Dockerfile:1\)\n - JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals \(Dockerfile:3\)/);
  writeFileSync(join(context, 'Dockerfile'), `# check=error=true\n${dockerfile.replace('RUN echo ran', 'RUN echo strict')}`);
  const failed = cli(['build', '--progress', 'plain', context]);
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /lint violation found for rules: FromAsCasing, JSONArgsRecommended/);
  assert.doesNotMatch(failed.stderr, /RUN echo strict/, 'no step ran');
  const skipped = cli(['build', '--progress', 'plain', '--build-arg', 'BUILDKIT_DOCKERFILE_CHECK=skip=FromAsCasing,JSONArgsRecommended;error=true', context]);
  assert.equal(skipped.status, 0, skipped.stderr);
  assert.doesNotMatch(skipped.stderr, /warnings? found/);  // An image of one platform (a manifest, no index) for another: built, with current BuildKit's warning.
  const amd64Only = `${cluster.busybox.reference.replace(/:[^:/]+$/, '')}@${cluster.busybox.manifests['linux/amd64']}`;
  // And a variable the base image's env does not set (its PATH is the hint).
  writeFileSync(join(context, 'Dockerfile'), `FROM ${amd64Only}\nCOPY Dockerfile /\nENV P=$PAHT\n`);
  const other = cli(['build', '--progress', 'plain', '--platform', 'linux/arm64', context]);
  assert.equal(other.status, 0, other.stderr);
  assert.ok(other.stderr.includes(`2 warnings found:\n - InvalidBaseImagePlatform: Base image ${amd64Only} was pulled with platform "linux/amd64", expected "linux/arm64/v8" for current build (Dockerfile:1)\n - UndefinedVar: Usage of undefined variable '$PAHT' (did you mean $PATH?) (Dockerfile:3)`), other.stderr);
});

test('--add-host reaches the /etc/hosts of RUN, --shm-size its /dev/shm, --ulimit its rlimits; --allow of an entitlement the server does not grant fails in BuildKit\'s words', () => {
  const context = mkdtempSync(join(work, 'hosts-'));
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN cat /etc/hosts\n`);
  const run = cli(['build', '--progress', 'plain', '--no-cache', '--add-host', 'cache.internal:10.1.2.3', '--add-host', 'db.internal:10.1.2.4', context]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stderr, /10\.1\.2\.3\s+cache\.internal/);
  assert.match(run.stderr, /10\.1\.2\.4\s+db\.internal/);
  // --shm-size and --ulimit as buildx: the step sees its /dev/shm size and rlimits.
  writeFileSync(join(context, 'limits.Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo "shm=$(df -k /dev/shm | tail -1 | awk '{print $2}') nofile=$(ulimit -n)/$(ulimit -Hn)"\n`);
  const limits = cli(['build', '--progress', 'plain', '--no-cache', '-f', join(context, 'limits.Dockerfile'), '--shm-size', '128m', '--ulimit', 'nofile=1024:2048', context]);
  assert.equal(limits.status, 0, limits.stderr);
  assert.match(limits.stderr, /shm=131072 nofile=1024\/2048/);
  const defaults = cli(['build', '--progress', 'plain', '--no-cache', '-f', join(context, 'limits.Dockerfile'), context]);
  assert.equal(defaults.status, 0, defaults.stderr);
  assert.match(defaults.stderr, /shm=65536 nofile=(\d+)\/\1\n/, 'the default: 64MB and one open-files limit (Docker\'s 1048576, or the worker\'s own where it cannot raise it)');
  assert.doesNotMatch(defaults.stderr, /nofile=1024\//);
  // More than the worker itself may have fails the step in one line.
  const above = cli(['build', '--progress', 'plain', '-f', join(context, 'limits.Dockerfile'), '--ulimit', 'rtprio=99', context]);
  assert.equal(above.status, 1, above.stderr);
  assert.match(above.stderr, /--ulimit rtprio=99:99 is above this worker's own limit/);
  // This cluster grants no entitlement: asking for one fails before anything runs, as with buildkitd.
  const denied = cli(['build', '--progress', 'plain', '--allow', 'network.host,security.insecure', context]);
  assert.equal(denied.status, 1, denied.stderr);
  assert.match(denied.stderr, /granting entitlement network\.host is not allowed by build daemon configuration/);
});

test('an unreachable builder exits 3, names the endpoint and suggests builder ls', () => {
  const run = cli(['build', example], { env: { BUILDYARD_BUILDER: 'tcp://127.0.0.1:1' } });
  assert.equal(run.status, 3);
  assert.match(run.stderr, /127\.0\.0\.1:1/);
  assert.match(run.stderr, /buildyard builder ls/);
});

test('builder create, use, ls (workers with native and emulated platforms), inspect and rm', () => {
  const tokenFile = join(work, 'builder-token');
  writeFileSync(tokenFile, cluster.token);
  const env = { BUILDYARD_BUILDER: '', BUILDYARD_TOKEN: '' };
  assert.equal(cli(['builder', 'create', '--name', 'e2e', '--token-file', tokenFile, '--use', cluster.frontend], { env }).status, 0);
  const ls = cli(['builder', 'ls'], { env });
  assert.equal(ls.status, 0, ls.stderr);
  assert.match(ls.stdout, /e2e\s*\*/);
  assert.match(ls.stdout, /worker-1/);
  assert.match(ls.stdout, /linux\/amd64/);
  assert.match(ls.stdout, /linux\/arm64/);
  const inspect = cli(['builder', 'inspect'], { env });
  assert.equal(inspect.status, 0, inspect.stderr);
  assert.match(inspect.stdout, /default/, 'the tenant is shown');
  assert.equal(cli(['builder', 'rm', 'e2e'], { env }).status, 0);
  assert.doesNotMatch(cli(['builder', 'ls'], { env }).stdout, /e2e/);
});

test('du lists the build cache and prune -f empties it', () => {
  // A build of its own, so there is cache to list whichever tests ran before.
  const context = mkdtempSync(join(work, 'du-'));
  writeFileSync(join(context, 'Dockerfile'), `ARG BASE\nFROM \${BASE}\nRUN echo du-${process.pid} > /du\n`);
  const build = cli(['build', '-q', '--platform', 'linux/amd64', '--build-arg', base(), context]);
  assert.equal(build.status, 0, build.stderr);
  const du = cli(['du']);
  assert.equal(du.status, 0, du.stderr);
  assert.match(du.stdout, /sha256:/, 'the build\'s layers are listed');
  assert.match(du.stdout, /Total/i);
  const prune = cli(['prune', '-a', '-f']);
  assert.equal(prune.status, 0, prune.stderr);
  assert.match(prune.stdout, /Total:/);
  const after = cli(['du']);
  assert.doesNotMatch(after.stdout, /sha256:/, 'nothing is left after prune -a');
});

test('the tty view renders steps with [stage N/M], timers and the summary in a pseudo-terminal', () => {
  const command = [process.execPath, ...appCommand('cli'), 'build', '--no-cache',
    '--platform', 'linux/amd64', '--build-arg', base(), example].map((a) => `'${a}'`).join(' ');
  const result = spawnSync('script', ['-qfec', `stty cols 160 rows 50; ${command}`, '/dev/null'], {
    cwd: work, encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, TERM: 'xterm' },
  });
  assert.equal(result.status, 0, result.stdout);
  const screen = result.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  assert.match(screen, /\[client 3\/3\] RUN sh common\/build\.sh client/);
  assert.match(screen, /\d+\.\d+s/);
  assert.match(screen, /worker-\d/);
  assert.match(screen, /cache hits \d+\/\d+/i);
  assert.ok(readdirSync(work).length > 0);
});
