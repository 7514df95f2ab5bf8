// Hand-written tar writer: tar-stream's pack cannot emit raw PAX records with binary values
// (SCHILY.xattr.* such as security.capability), does not sort, and does not normalise headers,
// all of which a reproducible OCI layer needs.
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';

export type LayerEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface LayerEntry {
  /** Path inside the layer, '/'-separated, relative (no leading '/' or './'), no trailing '/'. */
  path: string;
  type: LayerEntryType;
  /** Permission bits incl. setuid/setgid/sticky (the file-type bits are ignored). */
  mode: number;
  uid: number;
  gid: number;
  /** Modification time in seconds since the epoch (fractions are dropped). */
  mtime: number;
  /** Regular files: the content, either bytes or a file to read (its size must be `size`). */
  data?: Uint8Array;
  sourcePath?: string;
  size?: number;
  /** Symlink target, or for 'hardlink' the layer path of the earlier entry it links to. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: ReadonlyMap<string, Uint8Array>;
}

export interface WriteLayerTarOptions {
  /** Clamp every mtime to at most this (SOURCE_DATE_EPOCH, seconds). */
  sourceDateEpoch?: number;
}

const BLOCK = 512;
const USTAR_MAX_UIDGID = 0o7777777; // 2097151 (7 octal digits): above this the id goes into a PAX record
const USTAR_MAX_SIZE = 0o77777777777; // 8 GiB - 1
const TYPEFLAG: Record<LayerEntryType, string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6',
};

/** Byte-wise comparison of UTF-8 strings (not locale order): PAX keys, and names within a directory. */
export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export const OCI_WHITEOUT_PREFIX = '.wh.';
export const OCI_OPAQUE_WHITEOUT = '.wh..wh..opq';

/**
 * Sorts entries into the order BuildKit's differs write a layer in: Go's filepath.Walk order
 * (each directory's names bytewise, depth first: '/' compares lowest, so `usr/lib/python3/x`
 * comes before `usr/lib/python3.11`, where a plain byte sort puts it after), with a whiteout
 * where the name it deletes would be (`d/.wh.x` after `d/b`, not first), as containerd's
 * ChangeWriter writes each deletion when the walk reaches it. Another order gives the same
 * files but a layer digest other than BuildKit's.
 */
export function sortInWalkOrder<T extends { path: string }>(entries: T[]): T[] {
  const walkKey = (path: string) => {
    const slash = path.lastIndexOf('/');
    const name = path.slice(slash + 1);
    const deleted = name.startsWith(OCI_WHITEOUT_PREFIX) && name !== OCI_OPAQUE_WHITEOUT ? path.slice(0, slash + 1) + name.slice(OCI_WHITEOUT_PREFIX.length) : path;
    return Buffer.from(deleted.replaceAll('/', '\0'), 'utf8');
  };
  const keyed = entries.map((entry) => ({ entry, key: walkKey(entry.path) }));
  keyed.sort((a, b) => Buffer.compare(a.key, b.key));
  return keyed.map((k) => k.entry);
}

export function normaliseLayerPath(path: string): string {
  const parts = path.split('/').filter((p) => p.length > 0 && p !== '.');
  if (parts.some((p) => p === '..')) throw new Error(`layer path "${path}" contains "..": use paths inside the layer root`);
  return parts.join('/');
}

/** Go's formatter.formatString: the bytes that fit, NUL-ended when shorter; a cut that ends in '/' loses its slashes. */
function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  bytes.copy(block, offset, 0, Math.min(length, bytes.length));
  if (bytes.length > length && block[offset + length - 1] === 0x2f) {
    const kept = bytes.subarray(0, length - 1).toString('latin1').replace(/\/+$/, '').length;
    block[offset + kept] = 0;
  }
}

function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  // length-1 octal digits followed by NUL, zero padded: the form Go and GNU tar both write.
  const text = Math.max(0, Math.floor(value)).toString(8).padStart(length - 1, '0');
  block.write(text.slice(-(length - 1)) + '\0', offset, length, 'latin1');
}

/** One PAX record: "<len> <key>=<value>\n" where len counts the whole record. */
export function paxRecord(key: string, value: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

interface HeaderFields {
  name: string;
  /** USTAR's prefix field (a long name split at a '/'). */
  prefix?: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  /** Absent only in a PAX extended header, which Go writes without them. */
  devmajor?: number;
  devminor?: number;
}

function encodeHeader(h: HeaderFields): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, h.name);
  writeOctal(block, 100, 8, h.mode);
  writeOctal(block, 108, 8, h.uid);
  writeOctal(block, 116, 8, h.gid);
  writeOctal(block, 124, 12, h.size);
  writeOctal(block, 136, 12, h.mtime);
  block.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  block.write(h.typeflag, 156, 1, 'latin1');
  writeString(block, 157, 100, h.linkname);
  block.write('ustar\x0000', 257, 8, 'latin1');
  // uname/gname (265, 297) stay empty: ownership is numeric only.
  if (h.devmajor !== undefined && h.devminor !== undefined) {
    writeOctal(block, 329, 8, h.devmajor);
    writeOctal(block, 337, 8, h.devminor);
  }
  if (h.prefix) writeString(block, 345, 155, h.prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

const NAME_SIZE = 100;
const PREFIX_SIZE = 155;
const isASCII = (s: string): boolean => !/[^\x00-\x7f]/.test(s);
/** Go's toASCII: what a USTAR field can hold of a name whose whole is in a PAX record. */
const toASCII = (s: string): string => (isASCII(s) ? s : s.replace(/[^\x01-\x7f]/gu, ''));

/** Go's splitUSTARPath: an ASCII name over 100 bytes as USTAR's prefix and name fields, split at a '/'. */
function splitUstarPath(name: string): { prefix: string; suffix: string } | undefined {
  if (name.length <= NAME_SIZE || !isASCII(name)) return undefined;
  let length = name.length;
  if (length > PREFIX_SIZE + 1) length = PREFIX_SIZE + 1;
  else if (name[length - 1] === '/') length--;
  const i = name.lastIndexOf('/', length - 1);
  const suffixLength = name.length - i - 1;
  if (i <= 0 || suffixLength > NAME_SIZE || suffixLength === 0 || i > PREFIX_SIZE) return undefined;
  return { prefix: name.slice(0, i), suffix: name.slice(i + 1) };
}

/** Go's name for a PAX extended header: path.Join(dir, "PaxHeaders.0", file), ASCII, 100 bytes, no trailing '/'. */
function paxHeaderName(name: string): string {
  const slash = name.lastIndexOf('/');
  return toASCII(posix.join(name.slice(0, slash + 1), 'PaxHeaders.0', name.slice(slash + 1))).slice(0, NAME_SIZE).replace(/\/+$/, '');
}

/**
 * An entry's header blocks as Go's archive/tar writes a PAX-format header (containerd's layer
 * writer, so BuildKit's diffIDs): plain USTAR when every field fits (a long ASCII name split into
 * prefix and name), else a PAX extended header first with the records that do not fit, all of
 * them sorted. The bytes depend on nothing but the entry.
 */
function headerBlocks(entry: LayerEntry, sourceDateEpoch: number | undefined): Buffer[] {
  const name = entry.path + (entry.type === 'dir' ? '/' : '');
  const linkname = entry.linkname ?? '';
  const size = entry.type === 'file' ? entry.size ?? entry.data?.length ?? 0 : 0;
  let mtime = Math.floor(entry.mtime);
  if (sourceDateEpoch !== undefined && mtime > sourceDateEpoch) mtime = Math.floor(sourceDateEpoch);
  const pax = new Map<string, Uint8Array>();
  let ustar = true;
  if (!isASCII(name) || Buffer.byteLength(name) > NAME_SIZE) {
    pax.set('path', Buffer.from(name, 'utf8'));
    if (!splitUstarPath(name)) ustar = false;
  }
  const needsPax = (key: string, value: Uint8Array) => { pax.set(key, value); ustar = false; };
  if (!isASCII(linkname) || Buffer.byteLength(linkname) > NAME_SIZE) needsPax('linkpath', Buffer.from(linkname, 'utf8'));
  if (entry.uid > USTAR_MAX_UIDGID) needsPax('uid', Buffer.from(String(entry.uid)));
  if (entry.gid > USTAR_MAX_UIDGID) needsPax('gid', Buffer.from(String(entry.gid)));
  if (size > USTAR_MAX_SIZE) needsPax('size', Buffer.from(String(size)));
  if (mtime < 0 || mtime > USTAR_MAX_SIZE) needsPax('mtime', Buffer.from(String(mtime)));
  for (const [key, value] of entry.xattrs ?? []) needsPax(`SCHILY.xattr.${key}`, value);
  const isDevice = entry.type === 'char' || entry.type === 'block';
  const fields: HeaderFields = {
    name: toASCII(name),
    mode: entry.mode & 0o7777,
    uid: entry.uid > USTAR_MAX_UIDGID ? 0 : entry.uid,
    gid: entry.gid > USTAR_MAX_UIDGID ? 0 : entry.gid,
    size: size > USTAR_MAX_SIZE ? 0 : size,
    mtime: mtime < 0 || mtime > USTAR_MAX_SIZE ? 0 : mtime,
    typeflag: TYPEFLAG[entry.type],
    linkname: toASCII(linkname),
    devmajor: isDevice ? entry.devmajor ?? 0 : 0,
    devminor: isDevice ? entry.devminor ?? 0 : 0,
  };
  if (ustar) {
    const split = splitUstarPath(name);
    return [encodeHeader(split ? { ...fields, name: split.suffix, prefix: split.prefix } : fields)];
  }
  const keys = [...pax.keys()].sort(compareBytes);
  const body = Buffer.concat(keys.map((k) => paxRecord(k, pax.get(k) as Uint8Array)));
  const extended = encodeHeader({ name: paxHeaderName(name), mode: 0, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: 'x', linkname: '' });
  return [extended, body, padding(body.length), encodeHeader(fields)];
}

async function* fileContent(entry: LayerEntry): AsyncGenerator<Buffer> {
  const size = entry.size ?? entry.data?.length ?? 0;
  if (entry.data) {
    if (entry.data.length !== size) throw new Error(`layer entry "${entry.path}": data is ${entry.data.length} bytes but size says ${size}`);
    yield Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
  } else if (entry.sourcePath && size > 0) {
    let written = 0;
    for await (const chunk of createReadStream(entry.sourcePath, { end: size - 1, highWaterMark: 1 << 20 })) {
      const buf = chunk as Buffer;
      written += buf.length;
      yield buf;
    }
    if (written !== size) {
      throw new Error(`file ${entry.sourcePath} changed size while being archived (${written} of ${size} bytes): retry once it is stable`);
    }
  } else if (size > 0) {
    throw new Error(`layer entry "${entry.path}" has size ${size} but no data or sourcePath`);
  }
  yield padding(size);
}

/**
 * Streams a deterministic tar of `entries`: in walk order (parents before children),
 * numeric owners, empty uname/gname, mtimes clamped to `sourceDateEpoch`, PAX records (sorted)
 * for long names, binary xattrs, big ids and sizes, and two zero blocks at the end.
 */
export function writeLayerTar(entries: Iterable<LayerEntry>, options: WriteLayerTarOptions = {}): Readable {
  const sorted = sortInWalkOrder([...entries].map((e) => ({ ...e, path: normaliseLayerPath(e.path) })));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].path === sorted[i - 1].path) throw new Error(`layer entry "${sorted[i].path}" appears twice: give each path once`);
  }
  async function* generate(): AsyncGenerator<Buffer> {
    for (const entry of sorted) {
      if (entry.path.length === 0) continue; // the layer root itself is never an entry
      for (const block of headerBlocks(entry, options.sourceDateEpoch)) if (block.length > 0) yield block;
      if (entry.type === 'file') yield* fileContent(entry);
    }
    yield Buffer.alloc(BLOCK * 2);
  }
  return Readable.from(generate(), { objectMode: false });
}
