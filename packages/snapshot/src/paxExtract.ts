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

export function createTarExtract(onEntry: TarEntryHandler): Writable {
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
  const extract = new PaxRawExtract() as unknown as Writable;
  extract.on('entry', onEntry);
  return extract;
}
