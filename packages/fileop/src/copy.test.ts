// Needs root: checks ownership with real chown.
import assert from 'node:assert/strict';
import { promises as fsp, lstatSync, readFileSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { copyXattrs, readXattrs, restoreXattrs } from '@buildyard/snapshot';
import { copy } from './copy.js';
import { FileOpError } from './FileOpError.js';
import { populate, workspace } from './fixtures.test-util.js';

const isCode = (code: string) => (e: unknown) => e instanceof FileOpError && e.code === code && !e.message.includes('\n');

describe('copy', () => {
  const ws = workspace();
  let n = 0;
  /** A fresh destination root per test so tests stay independent. */
  const freshDest = async () => { const d = join(ws.base, `dest${n++}`); await fsp.mkdir(d); return d; };
  const mtime = new Date('2021-05-06T07:08:09Z');

  before(async () => {
    await populate(ws.src, {
      'a.txt': 'A', 'b.txt': 'BB', 'c.md': 'C',
      'dir/one': '1', 'dir/sub/two': '22', 'dir/sub/skip.log': 'x', 'dir/empty/': '',
      'exe': { mode: 0o750, content: '#!/bin/sh' },
      'link-rel': { link: 'a.txt' }, 'dir/inner-link': { link: '../a.txt' },
      'to-outside': { link: '../../outside.txt' }, 'abs-dir-link': { link: '/dir' },
      'pkg/./ignored': '', 'pkg/lib/x.js': 'x', 'pkg/lib/y.js': 'y', 'pkg/bin/z': 'z',
      'hard/h1': 'hardlinked',
    });
    await fsp.link(join(ws.src, 'hard/h1'), join(ws.src, 'hard/h2'));
    await fsp.writeFile(join(ws.base, 'outside.txt'), 'SECRET');
    await fsp.chown(join(ws.src, 'a.txt'), 1234, 5678);
    await fsp.chmod(join(ws.src, 'dir/sub'), 0o700);
    for (const p of ['a.txt', 'dir/one', 'dir/sub/two', 'exe']) await fsp.utimes(join(ws.src, p), mtime, mtime);
    await fsp.utimes(join(ws.src, 'dir/sub'), mtime, mtime);
  });
  after(() => ws.cleanup());

  test('a directory source copies its contents, not itself', async () => {
    const d = await freshDest();
    const r = await copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/out' });
    assert.equal(readFileSync(join(d, 'out/one'), 'utf8'), '1');
    assert.equal(readFileSync(join(d, 'out/sub/two'), 'utf8'), '22');
    assert.ok(lstatSync(join(d, 'out/empty')).isDirectory());
    assert.equal(existsSync(join(d, 'out/dir')), false);
    assert.equal(r.filesCopied, 4); // one, two, skip.log, inner-link
    assert.equal(r.bytes, 1 + 2 + 1);
  });

  test('single file: to a new name, into dir/ (created with parents 0755 root), into an existing dir', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/new-name' });
    assert.equal(readFileSync(join(d, 'new-name'), 'utf8'), 'A');
    assert.ok(lstatSync(join(d, 'new-name')).isFile());
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/p/q/' });
    assert.equal(readFileSync(join(d, 'p/q/a.txt'), 'utf8'), 'A');
    for (const p of ['p', 'p/q']) {
      const st = lstatSync(join(d, p));
      assert.equal(st.mode & 0o7777, 0o755, p);
      assert.equal(st.uid, 0);
    }
    await copy({ srcRoot: ws.src, sources: ['b.txt'], destRoot: d, dest: '/p' });
    assert.equal(readFileSync(join(d, 'p/b.txt'), 'utf8'), 'BB');
  });

  test('each source is copied to dest on its own: without a trailing slash dest is a file (BuildKit)', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['a.txt', 'c.md'], destRoot: d, dest: '/multi' });
    assert.ok(lstatSync(join(d, 'multi')).isFile(), 'the last source wins');
    await copy({ srcRoot: ws.src, sources: ['*.txt'], destRoot: d, dest: '/wild/' });
    assert.deepEqual((await fsp.readdir(join(d, 'wild'))).sort(), ['a.txt', 'b.txt']);
    await copy({ srcRoot: ws.src, sources: ['[c]*'], destRoot: d, dest: '/one-match' });
    assert.ok(lstatSync(join(d, 'one-match')).isFile());
    await copy({ srcRoot: ws.src, sources: ['a.txt', 'c.md'], destRoot: d, dest: '/wild' });
    assert.deepEqual((await fsp.readdir(join(d, 'wild'))).sort(), ['a.txt', 'b.txt', 'c.md'], 'an existing directory receives the files');
  });

  test('a wildcard matching nothing copies nothing (Dockerfile COPY); allowEmptyWildcard: false makes it a one-line error', async () => {
    const d = await freshDest();
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['*.nothing'], destRoot: d, dest: '/x/', allowEmptyWildcard: false }), (e: unknown) => isCode('ENOSOURCE')(e) && (e as Error).message.includes('*.nothing'));
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['missing'], destRoot: d, dest: '/x/' }), isCode('ENOSOURCE'));
    const r = await copy({ srcRoot: ws.src, sources: ['*.nothing'], destRoot: d, dest: '/x/' });
    assert.equal(r.filesCopied, 0);
  });

  test('sources cannot escape srcRoot through .. or symlinks', async () => {
    const d = await freshDest();
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['../outside.txt'], destRoot: d, dest: '/x' }), isCode('ENOSOURCE'));
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['to-outside'], destRoot: d, dest: '/x' }), isCode('ENOSOURCE'));
    // Scoped: ../../a.txt is the root's a.txt, and /dir through an absolute link is srcRoot/dir.
    await copy({ srcRoot: ws.src, sources: ['../../a.txt'], destRoot: d, dest: '/clamped' });
    assert.equal(readFileSync(join(d, 'clamped'), 'utf8'), 'A');
    await copy({ srcRoot: ws.src, sources: ['abs-dir-link/one'], destRoot: d, dest: '/via-link' });
    assert.equal(readFileSync(join(d, 'via-link'), 'utf8'), '1');
  });

  test('dest cannot escape destRoot through symlinks already there', async () => {
    const d = await freshDest();
    const victim = join(ws.base, 'victim');
    await fsp.mkdir(victim);
    await fsp.symlink(victim, join(d, 'abs-escape')); // absolute host path: means /<victim> inside the root
    await fsp.symlink('../../..', join(d, 'rel-escape'));
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/abs-escape/' });
    await copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/rel-escape/got' });
    assert.deepEqual(await fsp.readdir(victim), []);
    assert.equal(readFileSync(join(d, victim, 'a.txt'), 'utf8'), 'A');
    assert.equal(readFileSync(join(d, 'got/one'), 'utf8'), '1');
    // A file copied to a path that is a symlink is written through it (fsutil), inside the root.
    await fsp.symlink(join(ws.base, 'outside.txt'), join(d, 'trap'));
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/trap' });
    assert.ok(lstatSync(join(d, 'trap')).isSymbolicLink());
    assert.equal(readFileSync(join(d, ws.base, 'outside.txt'), 'utf8'), 'A');
    assert.equal(readFileSync(join(ws.base, 'outside.txt'), 'utf8'), 'SECRET');
  });

  test('only the copy\'s own destination is followed: a symlink a file lands on inside a destination directory is replaced', async () => {
    const d = await freshDest();
    await fsp.mkdir(join(d, 'somedir'));
    await fsp.writeFile(join(d, 't'), 't');
    await fsp.symlink('/t', join(d, 'somedir/a.txt'));
    await fsp.symlink('/somedir', join(d, 'lnkdir'));
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/lnkdir' });
    assert.ok(lstatSync(join(d, 'lnkdir')).isSymbolicLink());
    assert.ok(lstatSync(join(d, 'somedir/a.txt')).isFile());
    assert.equal(readFileSync(join(d, 't'), 'utf8'), 't');
    // A dangling link names where the file goes; its missing parents are made with the copy's owner.
    await fsp.symlink('/made/deep/f', join(d, 'dangling'));
    await copy({ srcRoot: ws.src, sources: ['b.txt'], destRoot: d, dest: '/dangling', owner: { uid: 3, gid: 4 } });
    assert.equal(readFileSync(join(d, 'made/deep/f'), 'utf8'), 'BB');
    assert.deepEqual([lstatSync(join(d, 'made')).uid, lstatSync(join(d, 'made/deep')).gid], [3, 4]);
  });

  test('ownership: root by default, --chown ids when given, source ids with preserve', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/def' });
    assert.deepEqual([lstatSync(join(d, 'def')).uid, lstatSync(join(d, 'def')).gid], [0, 0]);
    await copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/own/tree', owner: { uid: 1000, gid: 2000 } });
    for (const p of ['own/tree', 'own/tree/one', 'own/tree/sub', 'own/tree/sub/two', 'own/tree/inner-link', 'own']) {
      const st = lstatSync(join(d, p));
      assert.deepEqual([st.uid, st.gid], [1000, 2000], p);
    }
    await copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/kept', owner: 'preserve' });
    assert.deepEqual([lstatSync(join(d, 'kept')).uid, lstatSync(join(d, 'kept')).gid], [1234, 5678]);
  });

  test('the directory a directory source fills takes the source\'s mtime, whether new or existing; parents it makes do not', async () => {
    const src = join(ws.base, 'dated-src');
    await populate(src, { 'tree/f': 'f' });
    const old = new Date('2012-04-02T02:22:13Z');
    await fsp.utimes(join(src, 'tree'), old, old);
    const d = await freshDest();
    await fsp.mkdir(join(d, 'existing'));
    await copy({ srcRoot: src, sources: ['tree'], destRoot: d, dest: '/existing' });
    await copy({ srcRoot: src, sources: ['tree'], destRoot: d, dest: '/made/deep/' });
    assert.equal(lstatSync(join(d, 'existing')).mtime.getTime(), old.getTime());
    assert.equal(lstatSync(join(d, 'made/deep')).mtime.getTime(), old.getTime());
    assert.notEqual(lstatSync(join(d, 'made')).mtime.getTime(), old.getTime());
  });

  test('modes and mtimes are preserved; --chmod octal and symbolic override files and dirs', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['dir', 'exe'], destRoot: d, dest: '/keep/' });
    assert.equal(lstatSync(join(d, 'keep/exe')).mode & 0o7777, 0o750);
    assert.equal(lstatSync(join(d, 'keep/sub')).mode & 0o7777, 0o700);
    assert.equal(lstatSync(join(d, 'keep/exe')).mtime.getTime(), mtime.getTime());
    assert.equal(lstatSync(join(d, 'keep/sub')).mtime.getTime(), mtime.getTime());
    assert.equal(lstatSync(join(d, 'keep/sub/two')).mtime.getTime(), mtime.getTime());
    await copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/oct', chmod: '640' });
    assert.equal(lstatSync(join(d, 'oct/one')).mode & 0o7777, 0o640);
    assert.equal(lstatSync(join(d, 'oct/sub')).mode & 0o7777, 0o640);
    await copy({ srcRoot: ws.src, sources: ['dir', 'exe'], destRoot: d, dest: '/sym/', chmod: 'u+x,g-w,o=rX' });
    assert.equal(lstatSync(join(d, 'sym/one')).mode & 0o7777, 0o745); // 0644 -> u+x -> 0744 -> o=rX sees an x bit, like chmod(1)
    assert.equal(lstatSync(join(d, 'sym/sub')).mode & 0o7777, 0o705); // 0700 -> o=rX (dir)
    assert.equal(lstatSync(join(d, 'sym/exe')).mode & 0o7777, 0o755); // 0750 -> o=rX (executable)
    assert.ok(lstatSync(join(d, 'sym/inner-link')).isSymbolicLink());
  });

  test('symlinks inside a tree are copied as symlinks; a named symlink source is followed', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/t' });
    assert.equal(readlinkSync(join(d, 't/inner-link')), '../a.txt');
    await copy({ srcRoot: ws.src, sources: ['link-rel'], destRoot: d, dest: '/followed/' });
    assert.ok(lstatSync(join(d, 'followed/link-rel')).isFile());
    await copy({ srcRoot: ws.src, sources: ['link-rel'], destRoot: d, dest: '/kept/', followSymlinks: false });
    assert.equal(readlinkSync(join(d, 'kept/link-rel')), 'a.txt');
  });

  test('hardlinks stay hardlinks when both ends are copied', async () => {
    const d = await freshDest();
    const r = await copy({ srcRoot: ws.src, sources: ['hard'], destRoot: d, dest: '/h' });
    const [s1, s2] = [lstatSync(join(d, 'h/h1')), lstatSync(join(d, 'h/h2'))];
    assert.equal(s1.ino, s2.ino);
    assert.equal(r.bytes, 'hardlinked'.length);
    await copy({ srcRoot: ws.src, sources: ['hard/h1'], destRoot: d, dest: '/solo' });
    assert.equal(lstatSync(join(d, 'solo')).nlink, 1);
  });

  test('--parents keeps the relative path, with the /./ pivot', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['pkg/lib/*.js', 'pkg/./bin'], destRoot: d, dest: '/app/', parents: true });
    assert.equal(readFileSync(join(d, 'app/pkg/lib/x.js'), 'utf8'), 'x');
    assert.equal(readFileSync(join(d, 'app/pkg/lib/y.js'), 'utf8'), 'y');
    assert.equal(readFileSync(join(d, 'app/bin/z'), 'utf8'), 'z');
  });

  test('--exclude drops matching entries (dockerignore syntax) including top-level matches', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['dir', '*.txt'], destRoot: d, dest: '/e/', exclude: ['**/*.log', 'b.txt', 'empty'] });
    assert.equal(existsSync(join(d, 'e/sub/skip.log')), false);
    assert.equal(existsSync(join(d, 'e/empty')), false);
    assert.equal(existsSync(join(d, 'e/b.txt')), false);
    assert.equal(readFileSync(join(d, 'e/sub/two'), 'utf8'), '22');
    assert.equal(readFileSync(join(d, 'e/a.txt'), 'utf8'), 'A');
  });

  test('existing files are overwritten, directories merged; dir onto file and file onto dir are errors', async () => {
    const d = await freshDest();
    await populate(d, { 'm/one': 'old', 'm/keep': 'kept', 'f': 'file', 'isdir/a.txt/': '' });
    await copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/m' });
    assert.equal(readFileSync(join(d, 'm/one'), 'utf8'), '1');
    assert.equal(readFileSync(join(d, 'm/keep'), 'utf8'), 'kept');
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['dir'], destRoot: d, dest: '/f' }), isCode('ENOTDIR'));
    await assert.rejects(copy({ srcRoot: ws.src, sources: ['a.txt'], destRoot: d, dest: '/isdir/' }), isCode('EISDIR'));
  });

  test('xattrs go onto each copy itself after its owner (fsutil\'s copy): capabilities survive --chown, a link\'s stay on the link', async () => {
    // VFS_CAP_REVISION_2 with the effective flag, cap_net_bind_service permitted.
    const capability = Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    const src = join(ws.base, 'xattr-src');
    await populate(src, { 'tree/bin/app': 'binary', 'tree/note': 'text', 'tree/link': { link: '/etc/hostname' } });
    restoreXattrs([
      { path: join(src, 'tree/bin/app'), xattrs: new Map([['security.capability', capability], ['user.origin', Buffer.from('build')]]) },
      { path: join(src, 'tree/bin'), xattrs: new Map([['user.dir', Buffer.from('d')]]) },
      { path: join(src, 'tree/link'), xattrs: new Map([['trusted.link', Buffer.from('own')]]) },
    ]);
    const d = await freshDest();
    await populate(d, { 'etc/hostname': 'dest file' });
    await copy({ srcRoot: src, sources: ['tree'], destRoot: d, dest: '/out', owner: { uid: 1000, gid: 1000 }, copyXattrs });
    const app = readXattrs(join(d, 'out/bin/app'));
    assert.deepEqual(app.get('security.capability'), capability, 'set after the chown, which clears it');
    assert.equal(app.get('user.origin')?.toString(), 'build');
    assert.equal(lstatSync(join(d, 'out/bin/app')).uid, 1000);
    assert.equal(readXattrs(join(d, 'out/bin')).get('user.dir')?.toString(), 'd');
    assert.equal(readXattrs(join(d, 'out/link')).get('trusted.link')?.toString(), 'own');
    assert.equal(readXattrs(join(d, 'etc/hostname')).size, 0, 'nothing lands on what a copied link names');
    assert.equal(readXattrs('/etc/hostname').has('trusted.link'), false);
    // A file copied alone, and without the hook: fileop by itself copies no xattrs.
    await copy({ srcRoot: src, sources: ['tree/bin/app'], destRoot: d, dest: '/single', copyXattrs });
    assert.deepEqual(readXattrs(join(d, 'single')).get('security.capability'), capability);
    await copy({ srcRoot: src, sources: ['tree/bin/app'], destRoot: d, dest: '/plain' });
    assert.equal(readXattrs(join(d, 'plain')).size, 0);
  });
});
