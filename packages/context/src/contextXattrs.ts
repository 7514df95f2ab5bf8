// Extended attributes of context entries (fsutil's Stat.Xattrs): which ones a context keeps and
// their form in an entry and a manifest (also what a COPY's cache key covers of them).
import { ContextError } from './ContextError.js';

/**
 * An entry's extended attributes as [name, value in base64] pairs, sorted by name (bytewise),
 * names unique; absent when there are none. This is also their manifest form, so a manifest
 * read back from the store needs no conversion.
 */
export type EntryXattrs = [name: string, base64Value: string][];

/** Linux's limits (XATTR_NAME_MAX, XATTR_SIZE_MAX); no real file exceeds them. */
const NAME_MAX_BYTES = 255;
const VALUE_MAX_BYTES = 65_536;
/** Far above what files carry; bounds what one entry can make the server hold. */
const XATTRS_PER_ENTRY_MAX = 64;

/**
 * Whether a context keeps an attribute: `user.*` only, which is what a BuildKit build has of
 * them. fsutil's receiver sets every attribute the client sent and then chowns the file, which
 * clears `security.capability`, so a context file's capability never reaches BuildKit's COPY
 * (checked against buildkitd v0.11.6: conformance case edges/xattrs-context-copy). The rest are
 * left out on purpose: `trusted.*` (overlayfs's own among them) and other `security.*` names
 * (SELinux labels of the client's machine) would let a tenant set privileged or host-specific
 * state on a worker, and `system.posix_acl_*` names the client's uids. `user.*` attributes stay
 * in the snapshot (RUN steps see them, the COPY's cache key covers them), not in the layer.
 */
export function keepsContextXattr(name: string): boolean {
  return name.startsWith('user.') && name.length > 'user.'.length;
}

/**
 * The kept attributes of `pairs` (raw values), in entry form; undefined when none is kept.
 * Throws a ContextError naming `where` for what no file system holds (a name with a NUL byte,
 * over the length limits, repeated; too many attributes).
 */
export function entryXattrs(where: string, pairs: Iterable<readonly [string, Uint8Array]>): EntryXattrs | undefined {
  const kept: EntryXattrs = [];
  let count = 0;
  for (const [name, value] of pairs) {
    if (++count > XATTRS_PER_ENTRY_MAX) throw new ContextError(`context entry ${where} has more than ${XATTRS_PER_ENTRY_MAX} extended attributes; remove some from the file or add it to .dockerignore`);
    if (name.includes('\0') || Buffer.byteLength(name) > NAME_MAX_BYTES) throw new ContextError(`context entry ${where} has an invalid extended attribute name ${JSON.stringify(name.slice(0, 40))}`);
    if (value.byteLength > VALUE_MAX_BYTES) throw new ContextError(`context entry ${where}: extended attribute ${JSON.stringify(name)} is larger than ${VALUE_MAX_BYTES} bytes`);
    if (keepsContextXattr(name)) kept.push([name, Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')]);
  }
  if (kept.length === 0) return undefined;
  kept.sort((a, b) => Buffer.compare(Buffer.from(a[0]), Buffer.from(b[0])));
  for (let i = 1; i < kept.length; i++) {
    if (kept[i][0] === kept[i - 1][0]) throw new ContextError(`context entry ${where} lists extended attribute ${JSON.stringify(kept[i][0])} twice`);
  }
  return kept;
}

/** The raw values of an entry's attributes (only kept names: a manifest from the store is not trusted further). */
export function xattrValues(xattrs: EntryXattrs | undefined): [string, Buffer][] {
  return (xattrs ?? []).filter(([name]) => keepsContextXattr(name)).map(([name, value]) => [name, Buffer.from(value, 'base64')]);
}

/** Whether two entries carry the same attributes. */
export function sameXattrs(a: EntryXattrs | undefined, b: EntryXattrs | undefined): boolean {
  if (a === b) return true;
  if (!a || !b) return (a?.length ?? 0) === 0 && (b?.length ?? 0) === 0;
  return a.length === b.length && a.every(([name, value], i) => name === b[i][0] && value === b[i][1]);
}
