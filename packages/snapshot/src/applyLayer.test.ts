import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readlink, readdir, symlink, writeFile, link, utimes, chown, chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import tarStream from 'tar-stream';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { busyboxLayout, busyboxRootfs, zerosTar } from '@buildyard/testkit';
import { applyLayer } from './applyLayer.js';
import { tarDirectory } from './tarDirectory.js';
import { readXattrs, restoreXattrs } from './xattrs.js';
import { rawTar, streamOf, tempDir } from './testHelpers.test-util.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => { tmp = await tempDir('apply'); });
after(async () => { await tmp.cleanup(); });

async function listTree(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const name of (await readdir(join(root, rel))).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const st = await lstat(join(root, path));
    const what = st.isSymbolicLink() ? `-> ${await readlink(join(root, path))}` : st.isDirectory() ? 'dir' : st.isFile() ? `file ${st.size}` : 'special';
    out.push(`${path} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${what}`);
    if (st.isDirectory()) out.push(...await listTree(root, path));
  }
  return out;
}

describe('applyLayer', () => {
  it('unpacks the busybox base layer made by GNU tar and reports the diffID of its image config', async () => {
    const layout = await busyboxLayout();
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
    const blob = (digest: string) => join(layout, 'blobs/sha256', digest.slice(7));
    const imageIndex = JSON.parse(readFileSync(blob(index.manifests[0].digest), 'utf8'));
    const amd64 = imageIndex.manifests.find((m: { platform: { architecture: string } }) => m.platform.architecture === 'amd64');
    const manifest = JSON.parse(readFileSync(blob(amd64.digest), 'utf8'));
    const config = JSON.parse(readFileSync(blob(manifest.config.digest), 'utf8'));
    const target = join(tmp.path, 'busybox');
    await mkdir(target);
    const result = await applyLayer(target, createReadStream(blob(manifest.layers[0].digest)), { mediaType: manifest.layers[0].mediaType });
    assert.equal(result.diffID, config.rootfs.diff_ids[0]);
    assert.equal(result.digest, manifest.layers[0].digest);
    assert.deepEqual(await listTree(target), await listTree(await busyboxRootfs('amd64')));
    assert.equal(execFileSync(join(target, 'bin/busybox'), ['echo', 'ok'], { encoding: 'utf8' }), 'ok\n');
  });

  it('round-trips a tree through tarDirectory (gzip and zstd) keeping modes, owners, mtimes, links, devices and binary xattrs', async () => {
    const src = join(tmp.path, 'src');
    await cp(await busyboxRootfs('amd64'), src, { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    await writeFile(join(src, 'etc/suid'), 'x', { mode: 0o4755 });
    await chown(join(src, 'etc/suid'), 1234, 300000);
    await chmod(join(src, 'etc/suid'), 0o4755); // chown cleared the setuid bit
    await link(join(src, 'etc/passwd'), join(src, 'etc/passwd.hard'));
    execFileSync('mknod', [join(src, 'dev/null'), 'c', '1', '3']);
    execFileSync('mkfifo', [join(src, 'tmp/fifo')]);
    await symlink('../../etc/passwd', join(src, 'root/rel-link'));
    // Over 100 bytes: one split into USTAR's prefix and name, one (name too long) in a PAX record, one non-ASCII.
    await mkdir(join(src, 'usr', 'd'.repeat(60), 'e'.repeat(70)), { recursive: true });
    await writeFile(join(src, 'usr', 'd'.repeat(60), 'e'.repeat(70), 'f'.repeat(90)), 'split');
    await writeFile(join(src, 'usr', 'x'.repeat(120)), 'pax');
    await writeFile(join(src, 'usr', 'naïve'), 'utf-8');
    restoreXattrs([{ path: join(src, 'etc/suid'), xattrs: new Map([['trusted.bin', Buffer.from([0, 255, 10, 61])], ['user.text', Buffer.from('hi there')]]) }]);
    await utimes(join(src, 'etc'), 1_500_000_000, 1_500_000_000);
    for (const compression of ['gzip', 'zstd'] as const) {
      const blob = await tarDirectory(src, { compression, blobPath: join(tmp.path, `layer.${compression}`) });
      const dest = join(tmp.path, `dest-${compression}`);
      await mkdir(dest);
      // No media type: the magic bytes must select the decompressor.
      const result = await applyLayer(dest, createReadStream(blob.blobPath));
      assert.equal(result.compression, compression);
      assert.equal(result.diffID, blob.diffID);
      assert.equal(result.digest, blob.digest);
      assert.deepEqual(await listTree(dest), await listTree(src));
      const st = await lstat(join(dest, 'etc/suid'));
      assert.equal(st.mode & 0o7777, 0o4755);
      assert.equal(st.uid, 1234);
      assert.equal(st.gid, 300000);
      assert.equal((await lstat(join(dest, 'etc'))).mtimeMs, 1_500_000_000_000);
      assert.equal((await lstat(join(dest, 'etc/passwd'))).ino, (await lstat(join(dest, 'etc/passwd.hard'))).ino);
      assert.equal((await lstat(join(dest, 'dev/null'))).rdev, (await lstat('/dev/null')).rdev);
      const xattrs = readXattrs(join(dest, 'etc/suid'));
      assert.deepEqual(xattrs?.get('trusted.bin'), Buffer.from([0, 255, 10, 61]));
      assert.equal(xattrs?.get('user.text')?.toString(), 'hi there');
    }
    // GNU tar reads our layer too.
    const listing = execFileSync('tar', ['-tvzf', join(tmp.path, 'layer.gzip')], { encoding: 'utf8' });
    assert.match(listing, /-rwsr-xr-x 1234\/300000\s+1 .* etc\/suid/);
    assert.match(listing, /hrw-r--r-- 0\/0\s+0 .* etc\/passwd.hard link to etc\/passwd/);
    assert.match(listing, /crw-r--r-- 0\/0\s+1,3 .* dev\/null/);
  });

  it('applies OCI whiteouts and opaque directories onto an existing tree', async () => {
    const target = join(tmp.path, 'wh');
    await mkdir(join(target, 'keep'), { recursive: true });
    await mkdir(join(target, 'opq/sub'), { recursive: true });
    await writeFile(join(target, 'gone'), 'x');
    await writeFile(join(target, 'keep/gone2'), 'x');
    await writeFile(join(target, 'keep/stay'), 'x');
    await writeFile(join(target, 'opq/old'), 'x');
    await writeFile(join(target, 'opq/sub/old'), 'x');
    const layer = await rawTar([
      { name: '.wh.gone' },
      { name: 'keep/', type: 'directory' },
      { name: 'keep/.wh.gone2' },
      { name: 'opq/', type: 'directory' },
      { name: 'opq/-new', data: 'new' }, // sorts before the opaque marker: must survive it
      { name: 'opq/.wh..wh..opq' },
      { name: 'opq/sub/', type: 'directory' },
      { name: 'opq/sub/fresh', data: 'fresh' },
    ]);
    await applyLayer(target, streamOf(layer));
    const tree = (await listTree(target)).map((l) => l.split(' ')[0]);
    assert.deepEqual(tree, ['keep', 'keep/stay', 'opq', 'opq/-new', 'opq/sub', 'opq/sub/fresh']);
  });

  it('writes overlay whiteouts (char 0/0) and the opaque xattr in overlay mode', async () => {
    const upper = join(tmp.path, 'upper');
    await mkdir(upper);
    await applyLayer(upper, streamOf(await rawTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.passwd' },
      { name: 'var/', type: 'directory' },
      { name: 'var/.wh..wh..opq' },
      { name: 'var/new', data: 'n' },
    ])), { whiteouts: 'overlay' });
    const wh = await lstat(join(upper, 'etc/passwd'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(readXattrs(join(upper, 'var')).get('trusted.overlay.opaque')?.toString(), 'y');
    assert.equal(await readFile(join(upper, 'var/new'), 'utf8'), 'n');
  });

  it('a layer naming a path again replaces it the same in an empty target (no lstat per entry) as in one that holds something', async () => {
    const layer = async () => streamOf(await rawTar([
      { name: 'a', data: 'one' }, { name: 'a', data: 'two' },
      { name: 'd/', type: 'directory' }, { name: 'd', data: 'now a file' },
      { name: 'f', data: 'file first' }, { name: 'f/', type: 'directory' }, { name: 'f/x', data: 'x' },
      { name: 'p/q/implied', data: 'i' }, { name: 'p/', type: 'directory', mode: 0o711 },
      { name: 'l', type: 'symlink', linkname: '/etc/passwd' }, { name: 'l', data: 'not through the link' },
      { name: 'w', data: 'gone' }, { name: '.wh.w' },
      { name: 'h', data: 'h' }, { name: 'h2', type: 'link', linkname: 'h' }, { name: 'h2', data: 'own inode' },
    ]));
    const empty = join(tmp.path, 'again-empty');
    const holding = join(tmp.path, 'again-holding');
    await mkdir(empty);
    await mkdir(holding);
    await writeFile(join(holding, 'pre'), 'pre');
    for (const target of [empty, holding]) await applyLayer(target, await layer(), { whiteouts: 'overlay' });
    const tree = await listTree(empty);
    assert.deepEqual(tree, (await listTree(holding)).filter((l) => !l.startsWith('pre ')));
    assert.equal(await readFile(join(empty, 'a'), 'utf8'), 'two');
    assert.equal(await readFile(join(empty, 'd'), 'utf8'), 'now a file');
    assert.equal(await readFile(join(empty, 'f/x'), 'utf8'), 'x');
    assert.equal(await readFile(join(empty, 'l'), 'utf8'), 'not through the link');
    assert.ok((await lstat(join(empty, 'w'))).isCharacterDevice());
    assert.equal((await lstat(join(empty, 'h'))).nlink, 1);
    assert.ok(tree.includes('p 711 0:0 dir'), tree.join('\n'));
  });

  it('keeps entries naming a path above or outside the root inside it, as containerd (BuildKit, Docker) clamps them', async () => {
    const clamped = join(tmp.path, 'clamped');
    await mkdir(clamped);
    await applyLayer(clamped, streamOf(await rawTar([
      { name: '../evil', data: 'dotdot' },
      { name: 'a/../../../evil2', data: 'nested' },
      { name: '/etc/evil', data: 'absolute' },
      { name: '/', type: 'directory' },
      { name: 'h', type: 'link', linkname: '../../etc/evil' },
    ])));
    assert.equal(await readFile(join(clamped, 'evil'), 'utf8'), 'dotdot');
    assert.equal(await readFile(join(clamped, 'evil2'), 'utf8'), 'nested');
    assert.equal(await readFile(join(clamped, 'etc/evil'), 'utf8'), 'absolute');
    assert.equal((await lstat(join(clamped, 'h'))).ino, (await lstat(join(clamped, 'etc/evil'))).ino, 'the hardlink names the layer\'s own /etc/evil');
    await assert.rejects(lstat(join(tmp.path, 'evil')));
    await assert.rejects(lstat('/etc/evil'));
    const cases: [string, Parameters<typeof rawTar>[0], RegExp][] = [
      ['link-loop', [{ name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: 'a' }, { name: 'a/f', data: 'x' }], /layer entry "a\/f": too many levels of symbolic links/],
      ['link-to-file', [{ name: 'f', data: 'f' }, { name: 'l', type: 'symlink', linkname: 'f' }, { name: 'l/x', data: 'x' }], /layer entry "l\/x" needs "f" to be a directory but it is a file/],
      ['hardlink-to-nothing', [{ name: 'h', type: 'link', linkname: '../../etc/passwd' }], /is a hardlink to "..\/..\/etc\/passwd", which does not exist/],
    ];
    for (const [name, entries, error] of cases) {
      const target = join(tmp.path, `escape-${name}`);
      await mkdir(target);
      await assert.rejects(applyLayer(target, streamOf(await rawTar(entries))), error, name);
    }
    await assert.rejects(lstat('/tmp/evil'));
  });

  it('follows a symlink on an entry\'s way inside the root, as containerd (fs.RootPath): absolute, relative, chained, climbing above the root, for hardlink targets too', async () => {
    const target = join(tmp.path, 'through-links');
    await mkdir(target);
    await applyLayer(target, streamOf(await rawTar([
      { name: 'link', type: 'symlink', linkname: '/tmp' }, { name: 'link/evil', data: 'absolute' },
      { name: 'up', type: 'symlink', linkname: '../../../..' }, { name: 'up/etc/evil', data: 'above the root' },
      { name: 'b/', type: 'directory' }, { name: 'b/c', type: 'symlink', linkname: '../d' }, { name: 'a', type: 'symlink', linkname: 'b/c' }, { name: 'a/f', data: 'chained' },
      { name: 'h', type: 'link', linkname: 'a/f' },
      { name: 'link/', type: 'directory', mode: 0o700 },
    ])));
    assert.equal(await readFile(join(target, 'tmp/evil'), 'utf8'), 'absolute');
    assert.equal(await readFile(join(target, 'etc/evil'), 'utf8'), 'above the root');
    assert.equal(await readFile(join(target, 'd/f'), 'utf8'), 'chained');
    assert.equal((await lstat(join(target, 'h'))).ino, (await lstat(join(target, 'd/f'))).ino);
    assert.ok((await lstat(join(target, 'up'))).isSymbolicLink());
    assert.ok((await lstat(join(target, 'link'))).isDirectory(), 'a directory entry replaces the link of its own name, not its target');
    await assert.rejects(lstat('/tmp/evil'));
    await assert.rejects(lstat('/etc/evil'));
    await assert.rejects(lstat(join(tmp.path, 'etc')));
  });

  it('an earlier layer\'s link or file on an entry\'s way is hidden by a directory, as BuildKit\'s overlayfs snapshotter applies a layer into its own upper dir, over an overlay and in place alike', async () => {
    const first = await rawTar([
      { name: 'usr/', type: 'directory' }, { name: 'usr/lib/', type: 'directory', mode: 0o750 },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' }, { name: 'abs', type: 'symlink', linkname: '/tmp' }, { name: 'f', data: 'a file' },
    ]);
    const second = await rawTar([{ name: 'lib/libfoo.so', data: 'foo' }, { name: 'abs/x', data: 'x' }, { name: 'f/x', data: 'under f' }, { name: 'usr/lib/own', data: 'own' }]);
    const lower = join(tmp.path, 'hidden-lower');
    const upper = join(tmp.path, 'hidden-upper');
    const inPlace = join(tmp.path, 'hidden-in-place');
    for (const dir of [lower, upper, inPlace]) await mkdir(dir);
    await applyLayer(lower, streamOf(first), { whiteouts: 'overlay' });
    await applyLayer(upper, streamOf(second), { whiteouts: 'overlay', lowerDirs: [lower] });
    await applyLayer(inPlace, streamOf(first));
    await applyLayer(inPlace, streamOf(second));
    for (const root of [upper, inPlace]) {
      assert.equal(await readFile(join(root, 'lib/libfoo.so'), 'utf8'), 'foo', root);
      assert.equal(await readFile(join(root, 'abs/x'), 'utf8'), 'x', root);
      assert.equal(await readFile(join(root, 'f/x'), 'utf8'), 'under f', root);
      assert.ok((await lstat(join(root, 'lib'))).isDirectory(), root);
      assert.equal((await lstat(join(root, 'usr/lib'))).mode & 0o7777, 0o750, 'a directory of the lower layer on the way keeps its metadata');
      await assert.rejects(lstat(join(root, 'usr/lib/libfoo.so')), root);
    }
    assert.ok((await lstat(join(lower, 'lib'))).isSymbolicLink(), 'the lower layer is untouched');
    await assert.rejects(lstat('/tmp/x'));
  });

  it('a lower layer\'s link never leads a lookup out of the layers: a hardlink through it is refused, an implied directory under it takes no metadata from what it points at', async () => {
    // Outside every layer: what a malicious image's links point at (the host's /etc, say).
    const outside = join(tmp.path, 'host-secrets');
    await mkdir(join(outside, 'dir'), { recursive: true });
    await writeFile(join(outside, 'shadow'), 'host secret');
    await chmod(join(outside, 'dir'), 0o711);
    await utimes(join(outside, 'dir'), new Date(1_234_567_000_000), new Date(1_234_567_000_000));
    const first = await rawTar([{ name: 'abs', type: 'symlink', linkname: outside }, { name: 'rel', type: 'symlink', linkname: '../../../../../../../..' + outside }]);
    const lower = join(tmp.path, 'escape-lower');
    await mkdir(lower);
    await applyLayer(lower, streamOf(first), { whiteouts: 'overlay' });
    for (const via of ['abs', 'rel']) {
      const upper = join(tmp.path, `escape-upper-${via}`);
      await mkdir(upper);
      await assert.rejects(
        applyLayer(upper, streamOf(await rawTar([{ name: 'stolen', type: 'link', linkname: `${via}/shadow` }])), { whiteouts: 'overlay', lowerDirs: [lower] }),
        new RegExp(`"stolen" is a hardlink to "${via}/shadow", which does not exist`),
      );
      await assert.rejects(readFile(join(upper, 'stolen')), via);
      const implied = join(tmp.path, `escape-implied-${via}`);
      await mkdir(implied);
      await applyLayer(implied, streamOf(await rawTar([{ name: `${via}/dir/f`, data: 'f' }])), { whiteouts: 'overlay', lowerDirs: [lower] });
      const made = await lstat(join(implied, via, 'dir'));
      assert.equal(made.mode & 0o7777, 0o755, `${via}/dir is a new directory, not a copy of ${outside}/dir's metadata`);
      assert.notEqual(made.mtimeMs, 1_234_567_000_000, via);
    }
  });

  it('a directory\'s deferred mode, times and xattrs never follow a link a later entry of the layer put in its place or its parent\'s', async () => {
    const victimFile = join(tmp.path, 'deferred-victim');
    const victimDir = join(tmp.path, 'deferred-victim-dir');
    await writeFile(victimFile, 'host file');
    await chmod(victimFile, 0o600);
    await mkdir(join(victimDir, 'q'), { recursive: true });
    await writeFile(join(victimDir, 'f'), 'host');
    await chmod(join(victimDir, 'q'), 0o700);
    const layer = await rawTar([
      { name: 'd/', type: 'directory', mode: 0o4777 },
      { name: 'd', type: 'symlink', linkname: victimFile },
      { name: 'p/', type: 'directory' }, { name: 'p/q/', type: 'directory', mode: 0o777 },
      { name: 'p/f', data: 'mine', xattrs: { 'user.planted': 'by the layer' } },
      { name: 'p', type: 'symlink', linkname: victimDir },
    ]);
    for (const whiteouts of ['overlay', 'apply'] as const) {
      const target = join(tmp.path, `deferred-${whiteouts}`);
      await mkdir(target);
      await applyLayer(target, streamOf(layer), { whiteouts });
      assert.ok((await lstat(join(target, 'd'))).isSymbolicLink(), whiteouts);
      assert.equal((await lstat(victimFile)).mode & 0o7777, 0o600, `${whiteouts}: the host file keeps its mode`);
      assert.equal((await lstat(join(victimDir, 'q'))).mode & 0o7777, 0o700, `${whiteouts}: the host directory under the swapped parent keeps its mode`);
      assert.deepEqual([...readXattrs(join(victimDir, 'f')).keys()].filter((k) => k.startsWith('user.')), [], `${whiteouts}: no xattr lands on the host file`);
    }
  });

  it('fails when the diffID does not match the expectation', async () => {
    const target = join(tmp.path, 'mismatch');
    await mkdir(target);
    await assert.rejects(applyLayer(target, streamOf(await rawTar([{ name: 'a', data: 'a' }])), { expectedDiffID: `sha256:${'0'.repeat(64)}` }), /has diffID sha256:[0-9a-f]{64} but sha256:0+ was expected/);
  });

  describe('limits', () => {
    const limitTarget = async (name: string) => {
      const target = join(tmp.path, name);
      await mkdir(target);
      return target;
    };
    const MIB = 1024 ** 2;

    it('the attacker: a gzip layer of a few KiB whose file of zeros expands past maxBytes fails at its header, before any of it is written', async () => {
      const small = await rawTar([{ name: 'a', data: 'a' }]);
      const zeros = Buffer.concat([small.subarray(0, 1024), await buffer(Readable.from(zerosTar(8 * MIB, 'big')))]);
      const layer = gzipSync(zeros, { level: 9 });
      assert.ok(layer.length < 64 * 1024, `the bomb is small: ${layer.length} bytes`);
      const target = await limitTarget('zeros');
      await assert.rejects(applyLayer(target, streamOf(layer), { limits: { maxBytes: MIB, maxEntries: 10 } }),
        { message: `layer content expands to more than ${MIB} bytes (tar bomb?); raise the unpack limit if the layer is expected` });
      assert.deepEqual(await readdir(target), ['a'], 'the entry before the limit is there, nothing of the one over it');
    });

    it('a header declaring 4 GiB is refused as it is read, though its content never comes; a PAX sparse file counts its declared size', async () => {
      const header = (await zerosTar(4 * 1024 ** 3, 'huge').next()).value as Buffer; // the header alone
      const truncated = await limitTarget('declared');
      await assert.rejects(applyLayer(truncated, streamOf(gzipSync(header))), /failed: /, 'unlimited: the missing content is the error');
      await assert.rejects(applyLayer(truncated, streamOf(gzipSync(header)), { limits: { maxBytes: MIB, maxEntries: 10 } }),
        /^Error: layer content expands to more than 1048576 bytes \(tar bomb\?\)/);
      const pack = tarStream.pack();
      pack.entry({ name: 'sparse', size: 1, pax: { 'GNU.sparse.realsize': String(1024 ** 4), 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0' } }, Buffer.from('x'));
      pack.finalize();
      const sparse = await limitTarget('sparse');
      await assert.rejects(applyLayer(sparse, streamOf(await buffer(pack)), { limits: { maxBytes: MIB, maxEntries: 10 } }), /more than 1048576 bytes/);
      assert.deepEqual(await readdir(sparse), []);
    });

    it('more entries than maxEntries fail at the first one over; layers sharing one limits object share its counts', async () => {
      const entries = (prefix: string) => rawTar(['1', '2', '3'].map((n) => ({ name: `${prefix}${n}`, data: n })));
      const target = await limitTarget('entries');
      await assert.rejects(applyLayer(target, streamOf(await entries('a')), { limits: { maxEntries: 2, maxBytes: MIB, remedy: 'export less' } }),
        { message: 'layer content has more than 2 entries (tar bomb?); export less' });
      assert.deepEqual((await readdir(target)).sort(), ['a1', 'a2']);
      const shared = { maxEntries: 4, maxBytes: MIB, used: { bytes: 0, entries: 0 } };
      const second = await limitTarget('shared');
      await applyLayer(second, streamOf(await entries('b')), { limits: shared });
      assert.deepEqual(shared.used, { bytes: 3, entries: 3 });
      await assert.rejects(applyLayer(second, streamOf(await entries('c')), { limits: shared }), /more than 4 entries/);
      assert.deepEqual((await readdir(second)).sort(), ['b1', 'b2', 'b3', 'c1']);
    });
  });
});
