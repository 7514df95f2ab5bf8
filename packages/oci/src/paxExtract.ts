// tar-stream decodes PAX values as UTF-8 text, which corrupts binary xattrs such as
// security.capability. This subclass keeps the raw PAX record bytes beside tar-stream's decoded
// map (it hooks tar-stream's internal long-header decoder); if tar-stream's internals ever
// change, xattrs fall back to the lossy decoded text instead of failing.
import tarStream from 'tar-stream';
import type { Writable } from 'node:stream';
import type { PassThrough } from 'node:stream';

export const RAW_PAX = Symbol('buildyard.rawPax');

export interface TarHeader {
  name: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: Date;
  linkname?: string | null;
  type?: string | null;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string> & { [RAW_PAX]?: Map<string, Buffer> };
}

export type TarEntryHandler = (header: TarHeader, body: PassThrough, next: (err?: unknown) => void) => void;

/** Parses PAX extended header records keeping values as bytes. */
export function parsePaxRecords(buf: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let rest = buf;
  while (rest.length > 0) {
    const space = rest.indexOf(0x20);
    if (space <= 0) break;
    const len = parseInt(rest.subarray(0, space).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= space + 1 || len > rest.length) break;
    const record = rest.subarray(space + 1, len - 1); // drop the trailing newline
    const eq = record.indexOf(0x3d);
    if (eq > 0) records.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    rest = rest.subarray(len);
  }
  return records;
}

interface ExtractInternals {
  _header: { type?: string } | null;
  _pax: (Record<string, string> & { [RAW_PAX]?: Map<string, Buffer> }) | null;
  _decodeLongHeader(buf: Buffer): void;
}

type ExtractConstructor = new (opts?: object) => ExtractInternals;

let PaxRawExtract: ExtractConstructor | undefined;

/** tar-stream's extract, async-iterable as it is, with each PAX header's raw records in `header.pax[RAW_PAX]`. */
export function tarExtract(): Writable & AsyncIterable<{ header: TarHeader } & PassThrough> {
  if (!PaxRawExtract) {
    const Base = (tarStream.extract() as unknown as { constructor: ExtractConstructor }).constructor;
    PaxRawExtract = class extends Base {
      override _decodeLongHeader(buf: Buffer): void {
        super._decodeLongHeader(buf);
        if (this._header?.type === 'pax-header' && this._pax && typeof this._pax === 'object') {
          this._pax[RAW_PAX] = parsePaxRecords(buf);
        }
      }
    };
  }
  return new PaxRawExtract() as unknown as Writable & AsyncIterable<{ header: TarHeader } & PassThrough>;
}

export function createTarExtract(onEntry: TarEntryHandler): Writable {
  const extract = tarExtract();
  extract.on('entry', onEntry);
  return extract;
}

/** An entry's SCHILY.xattr.* records as bytes (from the raw records when kept, else tar-stream's text). */
export function paxXattrs(header: TarHeader): Map<string, Buffer> {
  const values = new Map<string, Buffer>();
  const pax = header.pax;
  if (!pax) return values;
  const raw = pax[RAW_PAX];
  const records: Iterable<[string, Buffer | string]> = raw ?? Object.entries(pax);
  for (const [key, value] of records) {
    if (key.startsWith('SCHILY.xattr.')) values.set(key.slice('SCHILY.xattr.'.length), typeof value === 'string' ? Buffer.from(value, 'utf8') : value);
  }
  return values;
}
