import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readFile, readdir, rm, symlink, writeFile, copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buffer } from 'node:stream/consumers';
import { createGunzip, createGzip } from 'node:zlib';
import { busyboxLayout, until, zerosTar } from '@buildyard/testkit';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { applyLayer } from './applyLayer.js';
import { OverlaySnapshotter, type ChainLayer } from './OverlaySnapshotter.js';
import { ownedSnapshotName, snapshotChainNames } from './chainID.js';
import { RAW_PAX, createTarExtract, type TarHeader } from '@buildyard/oci';
import { diffUpper, tarDirectory } from './tarDirectory.js';
import { isMountPoint } from './mounts.js';
import { writeLayerBlob } from './layerBlob.js';
import { writeLayerTar } from './writeLayerTar.js';
import { restoreXattrs } from './xattrs.js';
import { rawTar, streamOf, tempDir } from './testHelpers.test-util.js';
import { pipeline } from 'node:stream/promises';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => { tmp = await tempDir('snap'); });
after(async () => { await tmp.cleanup(); });

async function busyboxLayer(): Promise<ChainLayer> {
  const layout = await busyboxLayout();
  const blob = (digest: string) => join(layout, 'blobs/sha256', digest.slice(7));
  const index = JSON.parse(readFileSync(blob(JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')).manifests[0].digest), 'utf8'));
  const manifest = JSON.parse(readFileSync(blob(index.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === 'amd64').digest), 'utf8'));
  const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8'));
  return { diffID: config.rootfs.diff_ids[0], digest: manifest.layers[0].digest, mediaType: manifest.layers[0].mediaType, open: () => createReadStream(blob(manifest.layers[0].digest)) };
}

async function tarLayer(entries: Parameters<typeof rawTar>[0]): Promise<ChainLayer> {
  const data = await rawTar(entries);
  // An uncompressed layer: its blob's digest is its diffID.
  const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  return { diffID: digest, digest, open: () => streamOf(data) };
}

async function tarEntries(blobPath: string): Promise<TarHeader[]> {
  const headers: TarHeader[] = [];
  const extract = createTarExtract((header, body, next) => { headers.push(header); body.resume(); body.on('end', () => next()); });
  await pipeline(createReadStream(blobPath), createGunzip(), extract);
  return headers;
}

describe('OverlaySnapshotter', () => {
  let snapshotter: OverlaySnapshotter;
  let top: string;
  before(async () => {
    snapshotter = new OverlaySnapshotter(join(tmp.path, 'root'));
    top = await snapshotter.ensureChain([
      await busyboxLayer(),
      await tarLayer([{ name: 'etc/', type: 'directory' }, { name: 'etc/.wh.group' }, { name: 'etc/motd', data: 'layer2' }, { name: 'tmp/', type: 'directory', mode: 0o1777 }, { name: 'tmp/old', data: 'old' }]),
      await tarLayer([{ name: 'tmp/', type: 'directory', mode: 0o1777 }, { name: 'tmp/.wh..wh..opq' }, { name: 'tmp/new', data: 'new' }, { name: 'srv/data/file', data: 'implied parents' }]),
    ]);
  });

  it('mounts a chain of three committed layers with whiteouts and opaque dirs applied', async () => {
    assert.equal((await snapshotter.list()).filter((s) => s.kind === 'committed').length, 3);
    const view = await snapshotter.view('view-1', top);
    try {
      const root = view.mountpoint;
      assert.equal(await readFile(join(root, 'etc/motd'), 'utf8'), 'layer2');
      assert.ok((await readFile(join(root, 'etc/passwd'), 'utf8')).startsWith('root:'));
      await assert.rejects(lstat(join(root, 'etc/group')), /ENOENT/);
      assert.deepEqual((await readdir(join(root, 'tmp'))).sort(), ['new']);
      assert.equal((await lstat(join(root, 'tmp'))).mode & 0o7777, 0o1777);
      assert.equal(await readFile(join(root, 'srv/data/file'), 'utf8'), 'implied parents');
      assert.equal(execFileSync(join(root, 'bin/busybox'), ['cat', join(root, 'tmp/new')], { encoding: 'utf8' }), 'new');
      await assert.rejects(writeFile(join(root, 'x'), 'x'), /EROFS/);
    } finally {
      await view.release();
      await snapshotter.remove('view-1');
    }
    assert.equal(await snapshotter.stat('view-1'), undefined);
    // A second ensureChain unpacks nothing and gives the same top.
    assert.equal(await snapshotter.ensureChain([await busyboxLayer()]), (await snapshotter.list()).find((s) => !s.parent)?.name);
  });

  it('diffs an upper dir into whiteouts and an opaque marker, deterministically, and commits it', async () => {
    const active = await snapshotter.prepare('run-1', top);
    try {
      const root = active.mountpoint;
      await rm(join(root, 'etc/passwd'));
      await rm(join(root, 'bin'), { recursive: true });
      await mkdir(join(root, 'bin'));
      await writeFile(join(root, 'bin/hello'), 'hi\n', { mode: 0o755 });
      await writeFile(join(root, 'etc/new'), 'n');
    } finally {
      await active.release();
    }
    assert.equal(await isMountPoint(active.mountpoint), false);
    const upper = active.upperdir as string;
    const first = await diffUpper(upper, { compression: 'gzip', blobPath: join(tmp.path, 'diff1.tgz') });
    const second = await diffUpper(upper, { compression: 'gzip', blobPath: join(tmp.path, 'diff2.tgz') });
    assert.equal(first.digest, second.digest);
    assert.deepEqual(await readFile(first.blobPath), await readFile(second.blobPath));
    const names = (await tarEntries(first.blobPath)).map((h) => h.name);
    assert.deepEqual(names, ['bin/', 'bin/.wh..wh..opq', 'bin/hello', 'etc/', 'etc/new', 'etc/.wh.passwd'], 'a whiteout where the walk reaches the name it deletes');

    const epoch = 1_000_000;
    const clampedA = await diffUpper(upper, { compression: 'gzip', sourceDateEpoch: epoch, blobPath: join(tmp.path, 'diff3.tgz') });
    const clampedB = await diffUpper(upper, { compression: 'gzip', sourceDateEpoch: epoch, blobPath: join(tmp.path, 'diff4.tgz') });
    assert.equal(clampedA.digest, clampedB.digest);
    assert.notEqual(clampedA.digest, first.digest);
    // Whiteouts say 1970-01-01 with or without an epoch, as containerd 2 (current BuildKit) writes them.
    for (const h of await tarEntries(clampedA.blobPath)) assert.equal(h.mtime?.getTime(), h.name.split('/').pop()!.startsWith('.wh.') ? 0 : epoch * 1000, h.name);
    for (const h of await tarEntries(first.blobPath)) if (h.name.split('/').pop()!.startsWith('.wh.')) assert.equal(h.mtime?.getTime(), 0, h.name);

    // The OCI diff applied on the lower view reproduces the merged view.
    const lowerCopy = join(tmp.path, 'lower-copy');
    const view = await snapshotter.view('view-2', top);
    try {
      execFileSync('cp', ['-a', `${view.mountpoint}/.`, lowerCopy]);
    } finally {
      await view.release();
      await snapshotter.remove('view-2');
    }
    await applyLayer(lowerCopy, createReadStream(first.blobPath));
    assert.equal(await readFile(join(lowerCopy, 'bin/hello'), 'utf8'), 'hi\n');
    assert.deepEqual(await readdir(join(lowerCopy, 'bin')), ['hello']);
    await assert.rejects(lstat(join(lowerCopy, 'etc/passwd')), /ENOENT/);

    await snapshotter.commit('built', 'run-1');
    assert.equal((await snapshotter.stat('built'))?.parent, top);
    const usage = await snapshotter.usage('built');
    assert.ok(usage.inodes >= 6 && usage.size > 0, JSON.stringify(usage));
    await assert.rejects(snapshotter.remove(top), /"built" is built on it/);
    await snapshotter.remove('built');
  });

  it('the attacker: a directory that replaces a symlink to a host directory lists none of the host\'s names among its whiteouts', async () => {
    // The build's own links, as `RUN ln -s /etc /l` would leave them; on the worker's filesystem
    // they name the host's directory.
    const hostDir = join(tmp.path, 'host-dir');
    await mkdir(hostDir);
    await writeFile(join(hostDir, 'host-only-name'), 'x');
    const linked = await snapshotter.ensureChain([
      await busyboxLayer(),
      await tarLayer([{ name: 'l', type: 'symlink', linkname: hostDir }, { name: 'd/', type: 'directory' }, { name: 'd/s', type: 'symlink', linkname: hostDir }, { name: 'd/gone', data: 'g' }]),
    ]);
    const active = await snapshotter.prepare('run-links', linked);
    try {
      const root = active.mountpoint;
      await rm(join(root, 'l'));
      await mkdir(join(root, 'l'));
      await writeFile(join(root, 'l/in'), 'in');
      await rm(join(root, 'd'), { recursive: true });
      await mkdir(join(root, 'd/s'), { recursive: true });
    } finally {
      await active.release();
    }
    const view = await snapshotter.view('lower-links', linked);
    try {
      const diff = await diffUpper(active.upperdir as string, { compression: 'gzip', blobPath: join(tmp.path, 'links.tgz'), lower: async () => view.mountpoint });
      const names = (await tarEntries(diff.blobPath)).map((h) => h.name);
      assert.deepEqual(names, ['d/', 'd/.wh.gone', 'd/s/', 'l/', 'l/in'], 'the lower dir\'s own names only, none through its links');
    } finally {
      await view.release();
      await snapshotter.remove('lower-links');
      await snapshotter.remove('run-links');
    }
  });

  it('leaves out what overlayfs copied up unchanged, as BuildKit\'s differ does: a hardlink to a lower file is the file', async () => {
    const active = await snapshotter.prepare('run-copyup', top);
    try {
      const root = active.mountpoint;
      // Copy-ups without a change: same mode, same owner.
      await chmod(join(root, 'etc/motd'), (await lstat(join(root, 'etc/motd'))).mode & 0o7777);
      await chown(join(root, 'srv/data/file'), 0, 0);
      await link(join(root, 'etc/passwd'), join(root, 'passwd-link'));
      await chmod(join(root, 'tmp/new'), 0o600);
    } finally {
      await active.release();
    }
    const view = await snapshotter.view('lower-copyup', top);
    try {
      const diff = await diffUpper(active.upperdir as string, { compression: 'gzip', blobPath: join(tmp.path, 'copyup.tgz'), lower: async () => view.mountpoint });
      const headers = await tarEntries(diff.blobPath);
      assert.deepEqual(headers.map((h) => `${h.name} ${h.type}`), ['passwd-link file', 'tmp/ directory', 'tmp/new file'], 'etc/ and srv/ held only unchanged copy-ups');
      const withoutLower = await diffUpper(active.upperdir as string, { compression: 'gzip', blobPath: join(tmp.path, 'copyup-all.tgz') });
      assert.ok((await tarEntries(withoutLower.blobPath)).some((h) => h.name === 'etc/passwd'), 'without the lower filesystem every copy-up is kept');
    } finally {
      await view.release();
      await snapshotter.remove('lower-copyup');
      await snapshotter.remove('run-copyup');
    }
  });

  it('diffs with no tool on PATH, taking a file\'s capability (the one xattr BuildKit\'s layers keep) and a symlink\'s own, never those of the host file it names', async () => {
    // A file capability (VFS_CAP_REVISION_2, effective): binary, with a byte above 0x7f.
    const capability = Buffer.from([1, 0, 0, 2, 0, 0x84, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const hostFile = join(tmp.path, 'host-secret');
    await writeFile(hostFile, 'the host\'s');
    restoreXattrs([{ path: hostFile, xattrs: new Map([['user.secret', Buffer.from('host only')]]) }]);
    const active = await snapshotter.prepare('run-xattrs', top);
    try {
      await writeFile(join(active.mountpoint, 'data'), 'step output');
      restoreXattrs([{ path: join(active.mountpoint, 'data'), xattrs: new Map([['security.capability', capability], ['user.snapshot-only', Buffer.from('x')]]) }]);
      restoreXattrs([{ path: hostFile, xattrs: new Map([['security.capability', capability]]) }]);
      await symlink(hostFile, join(active.mountpoint, 'link'));
    } finally {
      await active.release();
    }
    const path = process.env.PATH;
    process.env.PATH = join(tmp.path, 'no-tools'); // the diff starts no process (getfattr was one)
    try {
      const layer = await diffUpper(active.upperdir as string, { compression: 'gzip', blobPath: join(tmp.path, 'xattrs.tgz') });
      const headers = new Map((await tarEntries(layer.blobPath)).map((h) => [h.name, h]));
      assert.deepEqual(headers.get('data')?.pax?.[RAW_PAX]?.get('SCHILY.xattr.security.capability'), capability);
      assert.equal(headers.get('data')?.pax?.[RAW_PAX]?.has('SCHILY.xattr.user.snapshot-only'), false, 'containerd\'s change writer exports no other xattr');
      assert.equal(headers.get('link')?.linkname, hostFile);
      assert.deepEqual([...(headers.get('link')?.pax?.[RAW_PAX]?.keys() ?? [])].filter((k) => k.startsWith('SCHILY.xattr.')), []);
      const empty = await snapshotter.prepare('run-empty', top);
      await empty.release();
      // A step that wrote nothing: two zero blocks, the tar of nothing, as BuildKit's empty layer.
      assert.equal((await diffUpper(empty.upperdir as string, { compression: 'gzip', blobPath: join(tmp.path, 'empty.tgz') })).diffID, 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef');
    } finally {
      process.env.PATH = path;
      await snapshotter.remove('run-xattrs');
      await snapshotter.remove('run-empty').catch(() => undefined);
    }
  });

  it('the attacker: a blob of its own claiming the diffID of another tenant\'s unpacked layer is unpacked and refused, never handed that layer\'s snapshot', async () => {
    const base = await busyboxLayer();
    const victim = await tarLayer([{ name: 'secret.txt', data: 'the victim\'s' }]);
    const victimTop = await snapshotter.ensureChain([base, victim]);
    // Anyone can know a diffID (image configs, docker inspect, SBOMs); the bytes are the attacker's.
    const own = await tarLayer([{ name: 'mine', data: 'the attacker\'s' }]);
    const claim: ChainLayer = { ...own, diffID: victim.diffID };
    const committed = (await snapshotter.list()).filter((s) => s.kind === 'committed').length;
    await assert.rejects(snapshotter.ensureChain([base, claim]), /has diffID .* but .* was expected/);
    assert.equal((await snapshotter.list()).filter((s) => s.kind === 'committed').length, committed, 'nothing was committed for the claim');
    assert.equal(await snapshotter.ensureChain([base, victim]), victimTop, 'the victim\'s chain is unchanged');
  });

  it('a step\'s result serves only its owner: ensureChain with that owner builds on it, anyone else unpacks the blobs; its metadata names the owner', async () => {
    const base = await busyboxLayer();
    const step = await tarLayer([{ name: 'step.txt', data: 'layer' }]);
    const next = await tarLayer([{ name: 'next.txt', data: 'next' }]);
    const baseTop = await snapshotter.ensureChain([base]);
    // The step's upper dir holds more than its layer says (here: a file the layer lacks).
    const active = await snapshotter.prepare('owned-step', baseTop);
    await writeFile(join(active.mountpoint, 'step.txt'), 'layer');
    await writeFile(join(active.mountpoint, 'hidden.txt'), 'only in the snapshot');
    await active.release();
    const [, stepChain, nextChain] = snapshotChainNames([base, step, next]);
    const owned = ownedSnapshotName('alice', stepChain!);
    assert.equal((await snapshotter.commit(owned, 'owned-step', { owner: 'alice' })).tenant, 'alice');
    const unopened = (l: ChainLayer): ChainLayer => ({ ...l, open: () => { throw new Error('unpacked a layer its owner already has'); } });
    assert.equal(await snapshotter.ensureChain([base, unopened(step)], { owner: 'alice' }), owned);
    // A layer unpacked onto the owner's snapshot is the owner's too.
    assert.equal(await snapshotter.ensureChain([base, unopened(step), next], { owner: 'alice' }), ownedSnapshotName('alice', nextChain!));
    // Recorded in meta.json (another process's snapshotter reads it): alice's prune takes both.
    const reread = new OverlaySnapshotter(snapshotter.rootDir);
    const tenants = await Promise.all([owned, ownedSnapshotName('alice', nextChain!), baseTop].map(async (n) => (await reread.stat(n))?.tenant));
    assert.deepEqual(tenants, ['alice', 'alice', undefined], 'a layer unpacked onto alice\'s snapshot is hers too; the unpacked base is no one\'s');
    // Another tenant, or no tenant, gets the layers as their blobs hold them.
    for (const other of [{ owner: 'bob' }, {}]) {
      const top = await snapshotter.ensureChain([base, step], other);
      assert.equal(top, stepChain);
      const view = await snapshotter.view(`owned-check-${Object.keys(other).length}`, top);
      try {
        assert.deepEqual((await readdir(view.mountpoint)).filter((n) => n.endsWith('.txt')).sort(), ['step.txt']);
      } finally {
        await view.release();
        await snapshotter.remove(`owned-check-${Object.keys(other).length}`);
      }
    }
    // Once the shared snapshot exists the owner uses it as well (it holds exactly the layers).
    assert.equal(await snapshotter.ensureChain([base, step], { owner: 'alice' }), stepChain);
  });

  it('the attacker: a base image layer of a few KiB of gzip holding 64 MiB of zeros fails at its header on a worker disk with 16 MiB free, naming no worker path, and leaves nothing behind', async () => {
    const disk = join(tmp.path, 'small-disk');
    await mkdir(disk);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', disk]);
    try {
      const small = new OverlaySnapshotter(join(disk, 'snapshots'));
      const blob = await buffer(Readable.from(zerosTar(64 * 1024 ** 2)).pipe(createGzip({ level: 9 })));
      assert.ok(blob.length < 256 * 1024, `the layer is small: ${blob.length} bytes`);
      const bomb: ChainLayer = { diffID: `sha256:${createHash('sha256').update(await buffer(Readable.from(zerosTar(64 * 1024 ** 2)))).digest('hex')}`, digest: `sha256:${createHash('sha256').update(blob).digest('hex')}`, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', open: () => streamOf(blob) };
      await assert.rejects(small.ensureChain([bomb]), (err: Error) => {
        assert.match(err.message, /^layer content expands to more than \d+ bytes \(tar bomb\?\); a worker unpacks a layer within 90% of its free disk space/);
        assert.ok(!err.message.includes(disk) && !err.message.includes('\n'), err.message);
        return true;
      });
      assert.deepEqual(await small.list(), [], 'no snapshot is left');
      assert.ok(Number(execFileSync('du', ['-sk', disk], { encoding: 'utf8' }).split('\t')[0]) < 1024, 'the disk holds under 1 MiB');
    } finally {
      execFileSync('umount', [disk]);
    }
  });

  it('round-trips a zstd layer through ensureChain', async () => {
    const src = join(tmp.path, 'zsrc');
    await mkdir(join(src, 'opt'), { recursive: true });
    await writeFile(join(src, 'opt/z'), 'zstd!');
    const blob = await tarDirectory(src, { compression: 'zstd', blobPath: join(tmp.path, 'z.tar.zst') });
    assert.equal(blob.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
    const zTop = await snapshotter.ensureChain([await busyboxLayer(), { diffID: blob.diffID, digest: blob.digest, mediaType: blob.mediaType, open: () => createReadStream(blob.blobPath) }]);
    const view = await snapshotter.view('zview', zTop);
    try {
      assert.equal(await readFile(join(view.mountpoint, 'opt/z'), 'utf8'), 'zstd!');
    } finally {
      await view.release();
      await snapshotter.remove('zview');
    }
  });

  it('mounts a chain longer than the mount option page allows with absolute paths', async () => {
    const long = new OverlaySnapshotter(join(tmp.path, 'long-chain-root-with-a-deliberately-long-name'));
    const layers: ChainLayer[] = [];
    for (let i = 0; i < 120; i++) layers.push(await tarLayer([{ name: `f${i}`, data: String(i) }]));
    const chainTop = await long.ensureChain(layers);
    const absolute = (await long.lowerDirs(chainTop)).join(':');
    assert.ok(absolute.length > 4096, `absolute lowerdir option is ${absolute.length} bytes`);
    const active = await long.prepare('long', chainTop);
    try {
      assert.equal((await readdir(active.mountpoint)).length, 120);
      assert.equal(await readFile(join(active.mountpoint, 'f0'), 'utf8'), '0');
      assert.equal(await readFile(join(active.mountpoint, 'f119'), 'utf8'), '119');
    } finally {
      await long.remove('long');
    }
    assert.equal(await isMountPoint(active.mountpoint), false);
  });

  it('cleanupStale unmounts and removes snapshots of a killed process, keeping live ones', async () => {
    const root = join(tmp.path, 'root');
    const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./staleChild.test-util.ts', import.meta.url)), root, 'orphan', top], { stdio: ['ignore', 'pipe', 'inherit'] });
    let mountpoint: string;
    try {
      mountpoint = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (c: Buffer) => {
          out += c.toString();
          const m = /ready (\S+)\n/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`child exited with ${code} before preparing`)));
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(undefined) : child.once('exit', r)));
    assert.equal(await isMountPoint(mountpoint), true, 'the killed child left its mount behind');
    const mine = await snapshotter.prepare('still-running', top);
    try {
      const fresh = new OverlaySnapshotter(root);
      const removed = await fresh.cleanupStale();
      assert.deepEqual(removed, ['orphan']);
      assert.equal(await isMountPoint(mountpoint), false);
      await assert.rejects(lstat(mountpoint), /ENOENT/);
      assert.equal((await fresh.stat('still-running'))?.kind, 'active');
      assert.equal(await isMountPoint(mine.mountpoint), true);
      assert.equal((await fresh.stat(top))?.kind, 'committed');
    } finally {
      await snapshotter.remove('still-running');
    }
  });

  it('unmounts when the prepare signal is aborted', async () => {
    const controller = new AbortController();
    const active = await snapshotter.prepare('abortable', top, { signal: controller.signal });
    assert.equal(await isMountPoint(active.mountpoint), true);
    controller.abort();
    // The abort starts the unmount; it ends whenever umount has run.
    await until('the aborted snapshot to be unmounted', async () => !(await isMountPoint(active.mountpoint)));
    await snapshotter.remove('abortable');
  });

  it('produces layers umoci accepts', async () => {
    const layout = join(tmp.path, 'layout');
    await mkdir(join(layout, 'blobs/sha256'), { recursive: true });
    const src = join(tmp.path, 'usrc');
    await mkdir(join(src, 'etc'), { recursive: true });
    await writeFile(join(src, 'etc/hostname'), 'buildyard\n');
    const layer = await tarDirectory(src, { compression: 'gzip', sourceDateEpoch: 0 });
    await copyFile(layer.blobPath, join(layout, 'blobs/sha256', layer.digest.slice(7)));
    await rm(layer.blobPath);
    const put = async (json: object): Promise<{ digest: string; size: number }> => {
      const data = Buffer.from(JSON.stringify(json));
      const blob = await writeLayerBlob(streamOf(data), { compression: 'none', blobPath: join(tmp.path, 'json-blob') });
      await copyFile(blob.blobPath, join(layout, 'blobs/sha256', blob.digest.slice(7)));
      return { digest: blob.digest, size: blob.size };
    };
    const config = await put({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.diffID] } });
    const manifest = await put({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: layer.mediaType, digest: layer.digest, size: layer.size }] });
    await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
    execFileSync('umoci', ['unpack', '--image', `${layout}:latest`, join(tmp.path, 'bundle')], { stdio: 'pipe' });
    assert.equal(await readFile(join(tmp.path, 'bundle/rootfs/etc/hostname'), 'utf8'), 'buildyard\n');
  });
});
