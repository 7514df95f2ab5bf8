// ADD of a local archive: the compressions BuildKit detects by content, and the entry names,
// links and types docker's archive.Unpack (which BuildKit's unpack runs) accepts or refuses.
import { execFileSync } from 'node:child_process';
import type { Case } from '../lib/types.js';
import { chain, copyFlagsHistory } from './upstream.js';

interface TarEntry {
  name: string;
  /** tar typeflag: '0' file, '1' hardlink, '2' symlink, '3' character device, '5' directory, '6' fifo, 'x' PAX header. */
  type?: '0' | '1' | '2' | '3' | '5' | '6' | 'x';
  mode?: number;
  uid?: number;
  body?: string;
  linkname?: string;
  /** PAX records for this entry (an 'x' header before it), e.g. SCHILY.xattr.* as bytes. */
  pax?: Record<string, string | Buffer>;
}

/** A ustar archive of `entries`, written by hand so each header is exactly what the case names. */
function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = [];
  const push = (e: TarEntry, body: Buffer) => {
    const h = Buffer.alloc(512);
    h.write(e.name, 0);
    h.write((e.mode ?? (e.type === '5' ? 0o755 : 0o644)).toString(8).padStart(7, '0'), 100);
    h.write((e.uid ?? 0).toString(8).padStart(7, '0'), 108);
    h.write('0000000', 116);
    h.write(body.length.toString(8).padStart(11, '0'), 124);
    h.write('14707707070', 136); // 2023-09-01, so no time depends on the run
    h.write('        ', 148);
    h.write(e.type ?? '0', 156);
    if (e.linkname) h.write(e.linkname, 157);
    if (e.type === '3') { h.write('0000001', 329); h.write('0000003', 337); } // 1:3, as /dev/null
    h.write('ustar\u000000', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148);
    blocks.push(h);
    if (body.length > 0) blocks.push(body, Buffer.alloc((512 - (body.length % 512)) % 512));
  };
  for (const e of entries) {
    if (e.pax) push({ name: `PaxHeaders/${e.name}`.slice(0, 99), type: 'x' }, paxRecords(e.pax));
    push(e, Buffer.from(e.body ?? ''));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** PAX records, "<length> key=value\n" each, the length counting its own digits. */
function paxRecords(records: Record<string, string | Buffer>): Buffer {
  return Buffer.concat(Object.entries(records).map(([key, value]) => {
    const rest = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
    let length = rest.length + 1;
    while (String(length).length + rest.length !== length) length = String(length).length + rest.length;
    return Buffer.concat([Buffer.from(String(length)), rest]);
  }));
}

const plain = tar([
  { name: 'dir/', type: '5', mode: 0o750 },
  { name: 'dir/in.txt', mode: 0o640, uid: 3, body: 'inside\n' },
  { name: 'dir/link', type: '2', linkname: 'in.txt' },
]);

/** `bytes` through a compressor from infra/dev/setup.sh's packages (deterministic flags). */
const compressed = (tool: 'gzip' | 'bzip2' | 'xz' | 'zstd', bytes: Buffer) =>
  execFileSync(tool, tool === 'gzip' ? ['-n', '-c'] : ['-q', '-c'], { input: bytes });

/** A file capability (VFS_CAP_REVISION_2, effective; cap_setuid and cap_net_bind_service): bytes above 0x7f. */
const CAPABILITY = Buffer.from([1, 0, 0, 2, 0x80, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

const archive = (bytes: Buffer) => ({ 'a.tar': { base64: bytes.toString('base64') } });
const addArchive = 'FROM {{BASE}}\nADD a.tar /x/\n';

export const cases: Case[] = [
  // Compressions are detected by content, whatever the file is called.
  { name: 'add-tar-gzip', dockerfile: addArchive, files: archive(compressed('gzip', plain)) },
  { name: 'add-tar-bzip2', dockerfile: addArchive, files: archive(compressed('bzip2', plain)) },
  { name: 'add-tar-xz', dockerfile: addArchive, files: archive(compressed('xz', plain)) },
  { name: 'add-tar-zstd', dockerfile: addArchive, files: archive(compressed('zstd', plain)) },
  { name: 'add-gzip-not-tar-copied', dockerfile: addArchive, files: archive(compressed('gzip', Buffer.from('just text\n'))) },
  // Entry names: cleaned, then joined under the destination.
  { name: 'add-tar-absolute-names', dockerfile: addArchive, files: archive(tar([{ name: '/abs/f', body: 'abs\n' }, { name: '/top', body: 'top\n' }])) },
  { name: 'add-tar-dotdot-inside', dockerfile: addArchive, files: archive(tar([{ name: 'a/', type: '5' }, { name: 'a/../b', body: 'b\n' }, { name: './c', body: 'c\n' }])) },
  { name: 'add-tar-dotdot-escape', dockerfile: addArchive, files: archive(tar([{ name: '../up', body: 'up\n' }])) },
  // Links.
  { name: 'add-tar-symlink-absolute', dockerfile: addArchive, files: archive(tar([{ name: 'l', type: '2', linkname: '/etc/passwd' }])) },
  { name: 'add-tar-symlink-escape', dockerfile: addArchive, files: archive(tar([{ name: 'l', type: '2', linkname: '../../etc' }])) },
  { name: 'add-tar-through-absolute-symlink', dockerfile: addArchive, files: archive(tar([{ name: 'root', type: '2', linkname: '/' }, { name: 'root/etc/f', body: 'inside\n' }])) },
  { name: 'add-tar-through-symlink', dockerfile: addArchive, files: archive(tar([{ name: 'd/', type: '5' }, { name: 'l', type: '2', linkname: 'd' }, { name: 'l/f', body: 'via link\n' }])) },
  { name: 'add-tar-hardlink', dockerfile: addArchive, files: archive(tar([{ name: 'f', body: 'f\n' }, { name: 'h', type: '1', linkname: 'f' }])) },
  { name: 'add-tar-hardlink-absolute', dockerfile: addArchive, files: archive(tar([{ name: 'f', body: 'f\n' }, { name: 'h', type: '1', linkname: '/f' }])) },
  { name: 'add-tar-hardlink-to-itself', dockerfile: addArchive, files: archive(tar([{ name: 'f', type: '1', linkname: 'f' }])) },
  { name: 'add-tar-hardlink-to-missing', dockerfile: addArchive, files: archive(tar([{ name: 'h', type: '1', linkname: 'nothing' }])) },
  // Entries' xattrs (SCHILY.xattr.*), set after the owner as docker's Unpack sets them; the
  // step's layer keeps security.capability only (containerd's change writer).
  { name: 'add-tar-xattrs', dockerfile: addArchive, files: archive(tar([
    { name: 'app', mode: 0o755, uid: 3, body: 'binary\n', pax: { 'SCHILY.xattr.security.capability': CAPABILITY, 'SCHILY.xattr.user.note': 'note' } },
    { name: 'd/', type: '5', pax: { 'SCHILY.xattr.user.dir': 'd' } },
    { name: 'd/f', body: 'f\n', pax: { 'SCHILY.xattr.security.capability': CAPABILITY } },
  ])) },
  // A base image's layer (what containerd unpacks, not ADD) naming paths above or outside its root:
  // containerd's applier clamps them to the root; read here by COPY --from.
  { name: 'base-layer-absolute-and-dotdot', dockerfile: 'FROM {{BASE}}\nCOPY --from={{CRAFTED}} / /c/\n',
    crafted: [{ name: '/abs/f', data: 'abs\n' }, { name: '../up', data: 'up\n' }, { name: 'a/../b', data: 'b\n' }, { name: 'h', type: 'link', linkname: '../../abs/f' }, { name: '/', type: 'directory' }] },
  { name: 'base-layer-through-own-link', dockerfile: 'FROM {{BASE}}\nCOPY --from={{CRAFTED}} / /c/\n',
    crafted: [{ name: 'link', type: 'symlink', linkname: '/tmp' }, { name: 'link/evil', data: 'x\n' }] },
  // A later layer writing through a lower layer's link (a merged-/usr base: lib -> usr/lib) or
  // file: BuildKit's overlayfs snapshotter applies it into its own upper dir, where the lower
  // link is not seen, so a directory hides it.
  { name: 'base-layer-through-lower-link', dockerfile: 'FROM {{BASE}}\nCOPY --from={{CRAFTED}} / /c/\n',
    crafted: [[{ name: 'usr/', type: 'directory' }, { name: 'usr/lib/', type: 'directory' }, { name: 'lib', type: 'symlink', linkname: 'usr/lib' }, { name: 'abs', type: 'symlink', linkname: '/usr/lib/../../..' }, { name: 'f', data: 'file\n' }],
      [{ name: 'lib/libfoo.so', data: 'foo\n' }, { name: 'abs/usr/top', data: 'top\n' }, { name: 'f/x', data: 'x\n' }, { name: '.wh.gone' }]] },
  // A directory entry over an existing file of the image, a file over an existing directory.
  { name: 'add-tar-replaces-existing', dockerfile: 'FROM {{BASE}}\nRUN mkdir -p /x/d2 && touch /x/d2/old && echo f > /x/f1\nADD a.tar /x/\n', files: archive(tar([{ name: 'f1/', type: '5' }, { name: 'd2', body: 'now a file\n' }])) },
  // Flags on an extracted archive.
  { name: 'add-tar-chown', upstream: { change: 'file/unpack.go gives --chown to the unpacked entries as ChownOpts (moby/buildkit 46e52f472, 2025-05); convert_copy.go writes --chown= into the history', patch: chain(copyFlagsHistory('--chown=7:8').patch!, (r) => { for (const f of r.files ?? []) if (f.path.startsWith('/x/')) Object.assign(f, { uid: 7, gid: 8 }); return r; }) }, dockerfile: 'FROM {{BASE}}\nADD --chown=7:8 a.tar /x/\n', files: archive(plain) },
  { name: 'add-tar-chmod', upstream: copyFlagsHistory('--chmod=600'), dockerfile: 'FROM {{BASE}}\nADD --chmod=600 a.tar /x/\n', files: archive(plain) },
  { name: 'add-tar-into-new-nested-dest', dockerfile: 'FROM {{BASE}}\nADD a.tar /new/nested/\n', files: archive(plain) },
  { name: 'add-tar-dest-without-slash', dockerfile: 'FROM {{BASE}}\nADD a.tar /nodir\n', files: archive(plain) },
  // Names and headers of every kind.
  { name: 'add-tar-whiteout-names', dockerfile: 'FROM {{BASE}}\nRUN mkdir -p /x && echo keep > /x/gone\nADD a.tar /x/\n', files: archive(tar([{ name: '.wh.gone', body: '' }, { name: 'd/', type: '5' }, { name: 'd/.wh..wh..opq', body: '' }, { name: '.wh..wh.plnk/', type: '5' }, { name: '.wh..wh.plnk/f', body: 'meta\n' }])) },
  { name: 'add-tar-long-name', dockerfile: addArchive, files: archive(tar([{ name: `${'d'.repeat(60)}/`, type: '5' }, { name: `${'d'.repeat(60)}/${'f'.repeat(39)}`, body: 'long\n' }])) },
  { name: 'add-tar-setuid-and-sticky', dockerfile: addArchive, files: archive(tar([{ name: 'bin/', type: '5' }, { name: 'bin/su', mode: 0o4755, body: '#!/bin/sh\n' }, { name: 'shared/', type: '5', mode: 0o1777 }])) },
  { name: 'add-tar-file-before-dir', dockerfile: addArchive, files: archive(tar([{ name: 'late/f', body: 'f\n' }, { name: 'late/', type: '5', mode: 0o700, uid: 9 }])) },
  { name: 'add-tar-duplicate-entry', dockerfile: addArchive, files: archive(tar([{ name: 'f', body: 'first\n' }, { name: 'f', body: 'second\n', mode: 0o600 }])) },
  { name: 'add-tar-char-device', dockerfile: addArchive, files: archive(tar([{ name: 'null', type: '3', mode: 0o666 }])) },
  { name: 'add-tar-fifo', dockerfile: addArchive, files: archive(tar([{ name: 'p', type: '6' }, { name: 'f', body: 'f\n' }])) },
];
