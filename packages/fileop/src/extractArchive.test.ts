// Needs root (ownership from the archive, mknod) and the bzip2 / xz-utils / zstd Debian packages.
import assert from 'node:assert/strict';
import { promises as fsp, lstatSync, readFileSync, readlinkSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readXattrs, restoreXattrs, setXattrs } from '@buildyard/snapshot';
import { copy } from './copy.js';
import { sniffArchive } from './extractArchive.js';
import { FileOpError } from './FileOpError.js';
import { compress, makeTar, populate, workspace, type TarItem } from './fixtures.test-util.js';

const ITEMS: TarItem[] = [
  { name: './', type: 'directory' },
  { name: './etc/', type: 'directory', mode: 0o700 },
  { name: './etc/app.conf', content: 'conf', mode: 0o640, uid: 42, gid: 43 },
  { name: './bin/tool', content: 'tool-binary', mode: 0o755 },
  { name: './bin/alias', type: 'symlink', linkname: 'tool' },
  { name: './bin/hard', type: 'link', linkname: 'bin/tool' },
  { name: './etc/abs-link', type: 'symlink', linkname: '/etc/app.conf' },
];
const KINDS = ['none', 'gzip', 'bzip2', 'xz', 'zstd'] as const;

describe('ADD auto-extract', () => {
  const ws = workspace();
  let n = 0;
  const freshDest = async () => { const d = join(ws.base, `dest${n++}`); await fsp.mkdir(d); return d; };
  const archive = async (name: string, items: TarItem[], kind: (typeof KINDS)[number] = 'gzip') => {
    await fsp.writeFile(join(ws.src, name), compress(await makeTar(items), kind));
    return name;
  };
  const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof FileOpError && e.code === code && !e.message.includes('\n') && (!re || re.test(e.message));

  before(async () => {
    for (const kind of KINDS) await fsp.writeFile(join(ws.src, `app-${kind}.bin`), compress(await makeTar(ITEMS), kind));
    await fsp.writeFile(join(ws.src, 'not-a-tar.tar.gz'), compress(Buffer.from('just gzip, no tar inside'), 'gzip'));
    await fsp.writeFile(join(ws.src, 'plain.tar'), 'hello, I only look like an archive');
  });
  after(() => ws.cleanup());

  for (const kind of KINDS) {
    test(`extracts a ${kind} tar detected by content, keeping modes, ids, links`, async () => {
      assert.equal(await sniffArchive(join(ws.src, `app-${kind}.bin`)), kind);
      const d = await freshDest();
      await populate(d, { 'opt/etc/app.conf': 'old', 'opt/keep': 'mine' });
      const r = await copy({ srcRoot: ws.src, sources: [`app-${kind}.bin`], destRoot: d, dest: '/opt', autoExtract: true });
      assert.equal(readFileSync(join(d, 'opt/etc/app.conf'), 'utf8'), 'conf');
      assert.equal(readFileSync(join(d, 'opt/keep'), 'utf8'), 'mine', 'directories are merged');
      const conf = lstatSync(join(d, 'opt/etc/app.conf'));
      assert.deepEqual([conf.mode & 0o7777, conf.uid, conf.gid], [0o640, 42, 43]);
      assert.equal(conf.mtime.toISOString(), '2020-01-02T03:04:05.000Z');
      assert.equal(lstatSync(join(d, 'opt/etc')).mode & 0o7777, 0o700);
      assert.equal(readlinkSync(join(d, 'opt/bin/alias')), 'tool');
      assert.equal(lstatSync(join(d, 'opt/bin/hard')).ino, lstatSync(join(d, 'opt/bin/tool')).ino);
      assert.equal(r.filesCopied, 5);
    });
  }

  test('--chown overrides archive ownership; without autoExtract the archive is copied as a file', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['app-gzip.bin'], destRoot: d, dest: '/x', autoExtract: true, owner: { uid: 7, gid: 8 } });
    assert.equal(lstatSync(join(d, 'x/etc/app.conf')).uid, 7);
    await copy({ srcRoot: ws.src, sources: ['app-gzip.bin'], destRoot: d, dest: '/raw/' });
    assert.ok(lstatSync(join(d, 'raw/app-gzip.bin')).isFile());
  });

  test('--chmod leaves what an archive holds as the archive says, and its new destination 0755 (as BuildKit\'s unpack)', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['app-gzip.bin'], destRoot: d, dest: '/new/x/', autoExtract: true, chmod: '600' });
    assert.equal(lstatSync(join(d, 'new/x/etc/app.conf')).mode & 0o7777, 0o640);
    assert.equal(lstatSync(join(d, 'new/x/etc')).mode & 0o7777, 0o700);
    assert.equal(lstatSync(join(d, 'new/x')).mode & 0o7777, 0o755);
    assert.equal(lstatSync(join(d, 'new')).mode & 0o7777, 0o755);
  });

  test('a directory\'s mode, set after the archive, never follows a link a later entry put in its place or its parent\'s', async () => {
    const victimFile = join(ws.base, 'victim-file');
    const victimDir = join(ws.base, 'victim-dir');
    await fsp.writeFile(victimFile, 'host file');
    await fsp.chmod(victimFile, 0o600);
    await fsp.mkdir(join(victimDir, 'q'), { recursive: true });
    await fsp.chmod(join(victimDir, 'q'), 0o700);
    const name = await archive('swapped.tar', [
      { name: 'd/', type: 'directory', mode: 0o4777 }, { name: 'd', type: 'symlink', linkname: victimFile },
      { name: 'p/', type: 'directory' }, { name: 'p/q/', type: 'directory', mode: 0o777 }, { name: 'p', type: 'symlink', linkname: victimDir },
    ], 'none');
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: [name], destRoot: d, dest: '/out/', autoExtract: true });
    assert.ok(lstatSync(join(d, 'out/d')).isSymbolicLink());
    assert.equal(lstatSync(victimFile).mode & 0o7777, 0o600, 'the host file keeps its mode');
    assert.equal(lstatSync(join(victimDir, 'q')).mode & 0o7777, 0o700, 'the host directory under the swapped parent keeps its mode');
  });

  test('files that only look like archives are copied as-is', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['not-a-tar.tar.gz', 'plain.tar'], destRoot: d, dest: '/f/', autoExtract: true });
    assert.ok(lstatSync(join(d, 'f/not-a-tar.tar.gz')).isFile());
    assert.equal(readFileSync(join(d, 'f/plain.tar'), 'utf8'), 'hello, I only look like an archive');
  });

  test('the destination is the root of every name: "..", absolute names and links stay inside it, as in BuildKit\'s chroot', async () => {
    const d = await freshDest();
    await populate(d, { 'opt/keep': 'mine' });
    const cases: Array<[string, TarItem[], Record<string, string>]> = [
      ['dotdot', [{ name: '../../evil', content: 'x' }], { 'opt/evil': 'x' }],
      ['nested-dotdot', [{ name: 'a/../../b/evil2', content: 'y' }], { 'opt/b/evil2': 'y' }],
      ['absolute', [{ name: '/etc/evil3', content: 'z' }], { 'opt/etc/evil3': 'z' }],
      // The links are kept as written; what goes through them lands inside the destination.
      ['through-absolute-link', [{ name: 'root', type: 'symlink', linkname: '/' }, { name: 'root/evil4', content: 'w' }], { 'opt/evil4': 'w' }],
      ['through-escaping-link', [{ name: 'up', type: 'symlink', linkname: '../../..' }, { name: 'up/tmp/evil5', content: 'v' }], { 'opt/tmp/evil5': 'v' }],
      ['hardlink-absolute', [{ name: 'f6', content: 'u' }, { name: 'h6', type: 'link', linkname: '/f6' }], { 'opt/h6': 'u' }],
    ];
    for (const [name, items, expect] of cases) {
      await archive(`${name}.tgz`, items);
      await copy({ srcRoot: ws.src, sources: [`${name}.tgz`], destRoot: d, dest: '/opt/', autoExtract: true });
      for (const [path, content] of Object.entries(expect)) assert.equal(readFileSync(join(d, path), 'utf8'), content, `${name}: ${path}`);
    }
    assert.equal(readlinkSync(join(d, 'opt/up')), '../../..', 'a link is kept as the archive wrote it');
    assert.equal(lstatSync(join(d, 'opt/h6')).ino, lstatSync(join(d, 'opt/f6')).ino);
    assert.equal(readFileSync(join(d, 'opt/keep'), 'utf8'), 'mine');
    for (const escaped of ['evil', 'b', 'etc/evil3', 'evil4', 'tmp']) assert.equal(existsSync(join(d, escaped)), false, `nothing at ${escaped} outside the destination`);
    assert.equal(existsSync(join(ws.base, 'evil')), false);
  });

  test('a hardlink to an entry not extracted before it is a clear error', async () => {
    const d = await freshDest();
    await archive('dangling-link.tgz', [{ name: 'h', type: 'link', linkname: '../../etc/passwd' }]);
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['dangling-link.tgz'], destRoot: d, dest: '/opt/', autoExtract: true }), isCode('EARCHIVE', /^ADD dangling-link.tgz: Error processing tar file\(exit status 1\): link \/etc\/passwd \/h: no such file or directory \(the archive's hard link "h" -> "..\/..\/etc\/passwd" names no entry extracted before it/));
    assert.equal(existsSync(join(d, 'opt/h')), false);
  });

  test('an entry replaces a symlink at its path rather than following it; fifos and devices are made', async () => {
    const d = await freshDest();
    await populate(d, { 'opt/real/keep': 'mine' });
    await fsp.symlink('real', join(d, 'opt/dirlink'));
    await archive('nodes.tgz', [
      { name: 'dirlink/', type: 'directory', mode: 0o700 },
      { name: 'pipe', type: 'fifo', mode: 0o640, uid: 5 },
      { name: 'null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
    ]);
    await copy({ srcRoot: ws.src, sources: ['nodes.tgz'], destRoot: d, dest: '/opt/', autoExtract: true });
    const dir = lstatSync(join(d, 'opt/dirlink'));
    assert.ok(dir.isDirectory() && (dir.mode & 0o7777) === 0o700, 'the symlink became the directory');
    assert.equal(readFileSync(join(d, 'opt/real/keep'), 'utf8'), 'mine', 'what the link pointed at is untouched');
    const pipe = lstatSync(join(d, 'opt/pipe'));
    assert.deepEqual([pipe.isFIFO(), pipe.mode & 0o7777, pipe.uid], [true, 0o640, 5]);
    const dev = lstatSync(join(d, 'opt/null'));
    assert.deepEqual([dev.isCharacterDevice(), dev.rdev], [true, lstatSync('/dev/null').rdev]);
  });

  test('tar bombs hit the size and entry-count limits', async () => {
    const d = await freshDest();
    await archive('big.tar.xz', [{ name: 'zeros', content: '\0'.repeat(200_000) }], 'xz');
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['big.tar.xz'], destRoot: d, dest: '/b/', autoExtract: true, extractLimits: { maxBytes: 100_000 } }), isCode('ELIMIT', /more than 100000 bytes/));
    await archive('many.tar.bz2', Array.from({ length: 50 }, (_, i) => ({ name: `f${i}`, content: '' })), 'bzip2');
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['many.tar.bz2'], destRoot: d, dest: '/m/', autoExtract: true, extractLimits: { maxEntries: 10 } }), isCode('ELIMIT', /more than 10 entries/));
    const ok = await copy({ srcRoot: ws.src, sources: ['many.tar.bz2'], destRoot: d, dest: '/m/', autoExtract: true, extractLimits: { maxEntries: 50 } });
    assert.equal(ok.filesCopied, 50);
  });

  test('a truncated archive is a clear error', async () => {
    const d = await freshDest();
    const full = compress(await makeTar(ITEMS), 'xz');
    await fsp.writeFile(join(ws.src, 'cut.tar.xz'), full.subarray(0, full.length - 40));
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['cut.tar.xz'], destRoot: d, dest: '/c/', autoExtract: true }), isCode('EARCHIVE'));
  });

  test('the attacker: an xz archive that asks for a 1.5 GiB dictionary is refused before xz allocates it, naming the file and not the worker\'s path', async () => {
    const d = await freshDest();
    const tar = await makeTar(ITEMS);
    await fsp.writeFile(join(ws.src, 'huge-dict.tar.xz'), execFileSync('xz', ['-c', '--lzma2=dict=1536MiB'], { input: tar }));
    const refused = (e: unknown) => isCode('ELIMIT', /^ADD huge-dict\.tar\.xz: .*more than 256 MiB of memory/)(e) && !(e as Error).message.includes(ws.src);
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['huge-dict.tar.xz'], destRoot: d, dest: '/x/', autoExtract: true }), refused);
    await assert.rejects(sniffArchive(join(ws.src, 'huge-dict.tar.xz'), 'huge-dict.tar.xz'), refused);
    assert.equal(existsSync(join(d, 'x')), false, 'nothing was copied in its place');
    // The same archive made with xz -9's own dictionary (64 MiB) extracts.
    await fsp.writeFile(join(ws.src, 'nine.tar.xz'), execFileSync('xz', ['-c', '-9'], { input: tar }));
    await copy({ srcRoot: ws.src, sources: ['nine.tar.xz'], destRoot: d, dest: '/nine/', autoExtract: true });
    assert.equal(readFileSync(join(d, 'nine/etc/app.conf'), 'utf8'), 'conf');
  });

  test('entries\' xattrs (GNU tar --xattrs) are set on them, binary bytes as they are, after --chown; without the hook none are', async () => {
    // A file capability (VFS_CAP_REVISION_2, effective) with a byte above 0x7f: no valid UTF-8.
    const capability = Buffer.from([1, 0, 0, 2, 0x80, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const tree = join(ws.base, 'xattr-tree');
    await populate(tree, { 'app': 'binary', 'd/f': 'f' });
    restoreXattrs([
      { path: join(tree, 'app'), xattrs: new Map([['security.capability', capability], ['user.note', Buffer.from('n')]]) },
      { path: join(tree, 'd'), xattrs: new Map([['user.dir', Buffer.from('d')]]) },
    ]);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-cf', join(ws.src, 'xattrs.tar'), '-C', tree, 'app', 'd']);
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['xattrs.tar'], destRoot: d, dest: '/x/', autoExtract: true, owner: { uid: 7, gid: 8 }, setXattrs });
    const app = readXattrs(join(d, 'x/app'));
    assert.deepEqual(app.get('security.capability'), capability, 'set after the chown, which clears it');
    assert.equal(app.get('user.note')?.toString(), 'n');
    assert.equal(lstatSync(join(d, 'x/app')).uid, 7);
    assert.equal(readXattrs(join(d, 'x/d')).get('user.dir')?.toString(), 'd');
    const plain = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['xattrs.tar'], destRoot: plain, dest: '/x/', autoExtract: true });
    assert.equal(readXattrs(join(plain, 'x/app')).size, 0);
  });
});
