// JSON bytes as BuildKit's Go code writes image documents, so the same document has the same
// digest from either builder: encoding/json escapes <, > and & (and U+2028/U+2029) in strings,
// writes struct fields in declaration order, and MarshalIndent indents by two spaces as
// JSON.stringify does.
import type { Descriptor } from './types.js';

/** Go's escapes applied to JSON text: those characters only occur inside strings. */
export function goEscapes(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A string as encoding/json writes it. */
export function goString(s: string): string {
  return goEscapes(JSON.stringify(s));
}

/** json.MarshalIndent(v, "", "  ") of a value whose objects are already in Go's field order. */
export function goIndentedJson(value: unknown): Buffer {
  return Buffer.from(goEscapes(JSON.stringify(value, null, 2)));
}

/** A map[string]string as encoding/json writes it: keys sorted by their bytes. */
export function sortedRecord<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
}

/** ocispec.Descriptor's field order (mediaType, digest, size, urls, annotations, platform), annotations sorted. */
export function descriptorInGoOrder(d: Descriptor): Descriptor {
  const platform = d.platform && { architecture: d.platform.architecture, os: d.platform.os, ...(d.platform['os.version'] ? { 'os.version': d.platform['os.version'] } : {}), ...(d.platform.variant ? { variant: d.platform.variant } : {}) };
  const annotations = d.annotations && sortedRecord(d.annotations);
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.urls ? { urls: d.urls } : {}), ...(annotations ? { annotations } : {}), ...(d.data !== undefined ? { data: d.data } : {}), ...(platform ? { platform } : {}), ...(d.artifactType ? { artifactType: d.artifactType } : {}) } as Descriptor;
}
