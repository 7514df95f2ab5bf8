import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { ownedSnapshotName, snapshotChainNames } from './chainID.js';
import { compressionFromMediaType, sniffCompression, peekBytes } from './compression.js';
import { createTarExtract, RAW_PAX, type TarHeader } from '@buildyard/oci';
import { paxRecord, sortInWalkOrder, writeLayerTar, type LayerEntry } from './writeLayerTar.js';

async function readTar(tar: Buffer): Promise<{ header: TarHeader; data: Buffer }[]> {
  const out: { header: TarHeader; data: Buffer }[] = [];
  const extract = createTarExtract((header, body, next) => {
    buffer(body).then((data) => { out.push({ header, data }); next(); }, next);
  });
  await pipeline(Readable.from([tar]), extract);
  return out;
}

const base = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000 };

describe('writeLayerTar', () => {
  it('sorts entries in walk order (parents first, then their children) and ends with two zero blocks', async () => {
    const entries: LayerEntry[] = [
      { ...base, path: 'b/z', type: 'file', data: Buffer.from('z') },
      { ...base, path: 'a-b', type: 'file', data: Buffer.from('') },
      { ...base, path: 'b', type: 'dir', mode: 0o755 },
      { ...base, path: 'a', type: 'dir', mode: 0o755 },
      { ...base, path: 'a/x', type: 'symlink', linkname: '../b/z' },
    ];
    const tar = await buffer(writeLayerTar(entries));
    assert.equal(tar.length % 512, 0);
    assert.ok(tar.subarray(tar.length - 1024).every((b) => b === 0));
    const read = await readTar(tar);
    assert.deepEqual(read.map((e) => e.header.name), ['a/', 'a/x', 'a-b', 'b/', 'b/z']);
    assert.equal(read[1].header.linkname, '../b/z');
    assert.equal(read[4].data.toString(), 'z');
    assert.equal(read[3].header.mode, 0o755);
    // ustar magic and empty owner names
    assert.equal(tar.subarray(257, 265).toString('latin1'), 'ustar\x0000');
    assert.ok(tar.subarray(265, 329).every((b) => b === 0));
  });

  it('is byte-identical for the same input in any order, and clamps mtimes to SOURCE_DATE_EPOCH', async () => {
    const entries: LayerEntry[] = [
      { ...base, path: 'x', type: 'file', data: Buffer.from('hello') },
      { ...base, path: 'd', type: 'dir', mode: 0o755, mtime: 5 },
    ];
    const one = await buffer(writeLayerTar(entries));
    const two = await buffer(writeLayerTar([...entries].reverse()));
    assert.deepEqual(one, two);
    const clamped = await readTar(await buffer(writeLayerTar(entries, { sourceDateEpoch: 1000 })));
    assert.equal(clamped.find((e) => e.header.name === 'x')?.header.mtime?.getTime(), 1000_000);
    assert.equal(clamped.find((e) => e.header.name === 'd/')?.header.mtime?.getTime(), 5000, 'older mtimes are kept');
  });

  it('writes headers as Go\'s archive/tar (so BuildKit\'s diffIDs): USTAR with a long name split at a \'/\' when all fits, else a PAX header with what does not', async () => {
    const field = (tar: Buffer, block: number, offset: number, length: number) => tar.subarray(block * 512 + offset, block * 512 + offset + length).toString('latin1').replace(/\0+$/, '');
    const long = `${'d'.repeat(80)}/${'f'.repeat(90)}`;
    // Fits USTAR: no PAX header; the prefix field holds the directories, uid 300000 its 7 octal digits.
    const plain = await buffer(writeLayerTar([{ ...base, path: long, type: 'file', data: Buffer.from('x'), uid: 300000 }]));
    assert.equal(field(plain, 0, 156, 1), '0');
    assert.equal(field(plain, 0, 0, 100), 'f'.repeat(90));
    assert.equal(field(plain, 0, 345, 155), 'd'.repeat(80));
    assert.equal(field(plain, 0, 108, 8), '1111740');
    assert.equal((await readTar(plain))[0].header.name, long);

    // An xattr (or a gid over 7 octal digits) needs PAX: every record that does not fit goes in it, the long path too.
    const binary = Buffer.from([0x00, 0xff, 0x0a, 0x3d, 0x80]);
    const tar = await buffer(writeLayerTar([
      { ...base, path: long, type: 'file', data: Buffer.from('x'), uid: 300000, gid: 5000000, xattrs: new Map([['security.capability', binary]]) },
    ]));
    const [entry] = await readTar(tar);
    assert.equal(entry.header.name, long);
    assert.equal(entry.header.pax?.uid, undefined);
    assert.equal(entry.header.pax?.gid, '5000000');
    assert.deepEqual(entry.header.pax?.[RAW_PAX]?.get('SCHILY.xattr.security.capability'), binary);
    assert.equal(field(tar, 0, 0, 100), `${'d'.repeat(80)}/PaxHeaders.0/${'f'.repeat(6)}`);
    assert.deepEqual([field(tar, 0, 100, 8), field(tar, 0, 136, 12), field(tar, 0, 156, 1), tar.subarray(329, 345).every((b) => b === 0)], ['0000000', '00000000000', 'x', true], 'the PAX header: mode and mtime 0, no device numbers');
    const main = 2; // the PAX header, its records, then the entry
    assert.equal(field(tar, main, 0, 100), long.slice(0, 100));
    assert.equal(field(tar, main, 116, 8), '0000000');

    // A non-ASCII name: PAX path, the USTAR fields keep its ASCII; a directory's PAX header is DIR/PaxHeaders.0.
    const named = await buffer(writeLayerTar([{ ...base, path: 'a/é', type: 'dir' }, { ...base, path: 'a', type: 'dir' }]));
    const [, dirEntry] = await readTar(named);
    assert.equal(dirEntry.header.name, 'a/é/');
    assert.equal(field(named, 1, 0, 100), 'a//PaxHeaders.0');
    assert.equal(field(named, 3, 0, 100), 'a//');
  });

  it('emits device numbers for devices, zeros for other entries (as Go\'s archive/tar, so BuildKit\'s diffIDs), and rejects duplicate or escaping paths', async () => {
    const tar = await buffer(writeLayerTar([
      { ...base, path: 'null', type: 'char', devmajor: 1, devminor: 3 },
      { ...base, path: 'f', type: 'file', data: Buffer.alloc(0) },
    ]));
    const [f, dev] = await readTar(tar);
    assert.equal(dev.header.type, 'character-device');
    assert.equal(dev.header.devmajor, 1);
    assert.equal(dev.header.devminor, 3);
    assert.equal(f.header.name, 'f');
    assert.equal(tar.subarray(329, 345).toString('latin1'), '0000000\u00000000000\u0000', 'zero device numbers on a regular file');
    assert.throws(() => writeLayerTar([{ ...base, path: 'a', type: 'dir' }, { ...base, path: './a/', type: 'dir' }]), /appears twice/);
    assert.throws(() => writeLayerTar([{ ...base, path: 'a/../../etc', type: 'dir' }]), /contains ".."/);
  });

  it('computes PAX record lengths that include their own digits', () => {
    for (const size of [1, 90, 95, 996, 9990]) {
      const record = paxRecord('path', Buffer.alloc(size, 0x61));
      const len = Number(record.subarray(0, record.indexOf(0x20)).toString());
      assert.equal(len, record.length);
      assert.equal(record[record.length - 1], 0x0a);
    }
  });

  it('orders paths as Go\'s filepath.Walk visits them (containerd\'s differ): names bytewise, a directory\'s children before its next sibling', async () => {
    const paths = ['é', 'a-b', 'usr/lib/python3.11', 'a/b', 'z', 'a', 'Z', 'a.b', 'usr/lib/python3/x', 'a b', 'a/b/c'];
    const walked = ['Z', 'a', 'a/b', 'a/b/c', 'a b', 'a-b', 'a.b', 'usr/lib/python3/x', 'usr/lib/python3.11', 'z', 'é'];
    assert.deepEqual(sortInWalkOrder(paths.map((path) => ({ path }))).map((e) => e.path), walked);
    // The tar's entries come in that order too.
    const read = await readTar(await buffer(writeLayerTar(paths.map((path) => ({ ...base, path, type: 'file' as const, size: 0 })))));
    assert.deepEqual(read.map((e) => e.header.name), walked);
  });

  it('puts a whiteout where the walk reaches the name it deletes, as buildkitd v0.11.6 wrote a RUN step deleting tree/f2, tree/gone and tree/dir/sub', () => {
    const paths = ['tree/.wh.gone', 'tree/dir/n', 'tree', 'tree/.wh.f2', 'tree/dir/.wh.sub', 'tree/dir'];
    assert.deepEqual(sortInWalkOrder(paths.map((path) => ({ path }))).map((e) => e.path), ['tree', 'tree/dir', 'tree/dir/n', 'tree/dir/.wh.sub', 'tree/.wh.f2', 'tree/.wh.gone']);
  });
});

describe('snapshotChainNames', () => {
  it('names each snapshot by every diffID and blob digest up to it, so a claimed diffID alone never names another blob\'s snapshot', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((x) => `sha256:${x.repeat(64)}`);
    const names = snapshotChainNames([{ diffID: a, digest: b }, { diffID: b, digest: c }]);
    assert.equal(names.length, 2);
    assert.equal(names[0], `sha256:${createHash('sha256').update(`v2  ${a} ${b}`).digest('hex')}`);
    assert.equal(names[1], `sha256:${createHash('sha256').update(`v2 ${names[0]} ${b} ${c}`).digest('hex')}`);
    assert.notEqual(snapshotChainNames([{ diffID: a, digest: c }])[0], names[0], 'the same diffID from another blob is another snapshot');
    assert.notEqual(snapshotChainNames([{ diffID: a, digest: b }, { diffID: b, digest: a }])[1], names[1]);
    assert.throws(() => snapshotChainNames([{ diffID: a, digest: 'nope' }]), /not a sha256/);
  });

  it('a step\'s own snapshot is named apart for each owner, never by the chain name alone', () => {
    const [name] = snapshotChainNames([{ diffID: `sha256:${'a'.repeat(64)}`, digest: `sha256:${'b'.repeat(64)}` }]);
    const names = new Set([name, ownedSnapshotName('alice', name!), ownedSnapshotName('bob', name!), ownedSnapshotName('alice bob', name!), ownedSnapshotName('alice', `${name}x`)]);
    assert.equal(names.size, 5);
    assert.match(ownedSnapshotName('alice', name!), /^sha256:[0-9a-f]{64}$/);
  });
});

describe('compression detection', () => {
  it('reads media types and sniffs magic bytes without consuming them', async () => {
    assert.equal(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar+gzip'), 'gzip');
    assert.equal(compressionFromMediaType('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
    assert.equal(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
    assert.equal(compressionFromMediaType('application/vnd.oci.image.layer.v1.tar'), 'none');
    assert.equal(compressionFromMediaType('application/octet-stream'), undefined);
    assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
    assert.equal(sniffCompression(Buffer.from('ustar')), 'none');
    const gz = gzipSync(Buffer.from('payload'));
    const stream = Readable.from([gz.subarray(0, 1), gz.subarray(1)]);
    const head = await peekBytes(stream, 4);
    assert.equal(sniffCompression(head), 'gzip');
    assert.deepEqual(await buffer(stream), gz);
  });
});
