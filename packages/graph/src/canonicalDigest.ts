import { createHash } from 'node:crypto';

/**
 * Canonical JSON: object keys sorted, `undefined` members dropped, no whitespace. Two equal
 * definitions therefore always hash to the same digest whatever order they were built in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return value === undefined ? 'null' : JSON.stringify(value);
  // JSON.stringify already drops undefined members and writes undefined array items as null;
  // given the sorted list of every key in the value, it writes each object's keys in that
  // order. Four times faster than building the string by hand (a cache key over a
  // 20,000-file context: ~8 ms against ~30 ms), for the plain objects and arrays plans are made of.
  const keys = new Set<string>();
  if (!collectKeys(value, keys)) return canonicalJsonByHand(value);
  return JSON.stringify(value, [...keys].sort());
}

/** Every key of every object in `value`; false when something is not a plain object or array (JSON.stringify would treat it otherwise). */
function collectKeys(value: unknown, keys: Set<string>): boolean {
  if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') return false;
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) {
    for (const item of value) if (!collectKeys(item, keys)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if ((proto !== Object.prototype && proto !== null) || 'toJSON' in value) return false;
  for (const k of Object.keys(value)) {
    // An own key named __proto__: JSON.stringify, reading the value by name, would get the prototype.
    if (k === '__proto__') return false;
    keys.add(k);
    if (!collectKeys((value as Record<string, unknown>)[k], keys)) return false;
  }
  return true;
}

function canonicalJsonByHand(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (value === undefined) return 'null';
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return '[' + value.map((v) => canonicalJsonByHand(v)).join(',') + ']';
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalJsonByHand(obj[k])).join(',') + '}';
}

/** sha256 of a string, as `sha256:<hex>`. */
export function sha256Digest(data: string | Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Digest of a value's canonical JSON. */
export function canonicalDigest(value: unknown): string {
  return sha256Digest(canonicalJson(value));
}
