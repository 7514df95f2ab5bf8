// Needs root (ownership from the archive) and the bzip2 / xz-utils Debian packages.
import assert from 'node:assert/strict';
import { promises as fsp, lstatSync, readFileSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
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
const KINDS = ['none', 'gzip', 'bzip2', 'xz'] as const;

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

  test('files that only look like archives are copied as-is', async () => {
    const d = await freshDest();
    await copy({ srcRoot: ws.src, sources: ['not-a-tar.tar.gz', 'plain.tar'], destRoot: d, dest: '/f/', autoExtract: true });
    assert.ok(lstatSync(join(d, 'f/not-a-tar.tar.gz')).isFile());
    assert.equal(readFileSync(join(d, 'f/plain.tar'), 'utf8'), 'hello, I only look like an archive');
  });

  test('entries with .., absolute names or escaping symlinks are refused', async () => {
    const d = await freshDest();
    const cases: Array<[string, TarItem[], RegExp]> = [
      ['dotdot', [{ name: '../../evil', content: 'x' }], /contains '\.\.'/],
      ['nested-dotdot', [{ name: 'a/../../evil', content: 'x' }], /contains '\.\.'/],
      ['absolute', [{ name: '/etc/evil', content: 'x' }], /absolute path/],
      ['link-escape', [{ name: 'up', type: 'symlink', linkname: '../../..' }], /points outside/],
      ['through-link', [{ name: 'l', type: 'symlink', linkname: '/' }, { name: 'l/evil', content: 'x' }], /through a symlink/],
      ['hardlink-out', [{ name: 'h', type: 'link', linkname: '../outside' }], /points outside/],
    ];
    for (const [name, items, re] of cases) {
      await archive(`${name}.tgz`, items);
      await assert.rejects(copy({ srcRoot: ws.src, sources: [`${name}.tgz`], destRoot: d, dest: '/opt/', autoExtract: true }), isCode('EESCAPE', re), name);
    }
    assert.equal(existsSync(join(d, 'evil')), false);
    assert.equal(existsSync(join(ws.base, 'evil')), false);
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
});
