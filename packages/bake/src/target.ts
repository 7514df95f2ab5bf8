// Bake's target and group model (buildx bake/bake.go): fields, how files and `inherits` merge
// them, and the JSON `--print` writes.

export interface Target {
  name: string;
  description?: string;
  attest?: string[];
  inherits?: string[];
  context?: string;
  contexts?: Record<string, string>;
  dockerfile?: string;
  'dockerfile-inline'?: string;
  args?: Record<string, string | null>;
  labels?: Record<string, string | null>;
  tags?: string[];
  'cache-from'?: string[];
  'cache-to'?: string[];
  target?: string;
  secret?: string[];
  ssh?: string[];
  platforms?: string[];
  output?: string[];
  pull?: boolean;
  'no-cache'?: boolean;
  network?: string;
  'no-cache-filter'?: string[];
  annotations?: string[];
  'shm-size'?: string;
  ulimits?: string[];
  entitlements?: string[];
  'extra-hosts'?: Record<string, string | null>;
}

export interface Group { name: string; description?: string; targets: string[] }

export interface Config { groups: Group[]; targets: Target[] }

export type FieldKind = 'string' | 'list' | 'map' | 'bool';

/** Every target attribute, in the order buildx's JSON prints them (its Target struct's order). */
export const TARGET_FIELDS: Record<string, FieldKind> = {
  description: 'string',
  attest: 'list',
  inherits: 'list',
  context: 'string',
  contexts: 'map',
  dockerfile: 'string',
  'dockerfile-inline': 'string',
  args: 'map',
  labels: 'map',
  tags: 'list',
  'cache-from': 'list',
  'cache-to': 'list',
  target: 'string',
  secret: 'list',
  ssh: 'list',
  platforms: 'list',
  output: 'list',
  pull: 'bool',
  'no-cache': 'bool',
  network: 'string',
  'no-cache-filter': 'list',
  annotations: 'list',
  'shm-size': 'string',
  ulimits: 'list',
  entitlements: 'list',
  'extra-hosts': 'map',
};

/** Lists that accumulate when merged (the others are replaced), as buildx's Target.Merge. */
const APPENDED = new Set(['secret', 'ssh', 'cache-from', 'no-cache-filter', 'annotations', 'ulimits', 'entitlements']);

type Fields = Record<string, unknown>;

/** Merges t2 over t (in place), as buildx's Target.Merge: maps merge (null values skipped), some lists append. */
export function mergeTarget(t: Target, t2: Target): void {
  const a = t as unknown as Fields;
  const b = t2 as unknown as Fields;
  for (const [key, kind] of Object.entries(TARGET_FIELDS)) {
    const v = b[key];
    if (v === undefined || key === 'inherits') continue;
    if (kind === 'map') {
      const src = v as Record<string, string | null>;
      for (const [k, x] of Object.entries(src)) {
        if (x === null && key !== 'contexts') continue;
        a[key] = { ...(a[key] as Record<string, unknown> | undefined), [k]: x };
      }
    } else if (key === 'attest') {
      a[key] = mergeAttests((a[key] as string[] | undefined) ?? [], v as string[]);
    } else if (kind === 'list' && APPENDED.has(key)) {
      a[key] = [...((a[key] as string[] | undefined) ?? []), ...(v as string[])];
    } else {
      a[key] = Array.isArray(v) ? [...v] : v;
    }
  }
  if (t2.inherits) t.inherits = [...(t.inherits ?? []), ...t2.inherits];
}

/** Attestations merge by type, the later one of a type replacing the earlier (buildx's Attests.Merge). */
export function mergeAttests(base: readonly string[], more: readonly string[]): string[] {
  const typeOf = (spec: string) => /(?:^|,)\s*type=([^,]*)/.exec(spec)?.[1]?.trim() ?? spec;
  const out = [...base];
  for (const m of more) {
    const i = out.findIndex((x) => typeOf(x) === typeOf(m));
    if (i >= 0) out[i] = m; else out.push(m);
  }
  return out;
}

export function cloneTarget(t: Target): Target {
  return JSON.parse(JSON.stringify(t)) as Target;
}

/** Drops duplicates and empty strings (buildx's removeDupes), and empty contexts. */
export function normalizeTarget(t: Target): void {
  const f = t as unknown as Fields;
  for (const key of ['attest', 'tags', 'secret', 'ssh', 'platforms', 'cache-from', 'cache-to', 'output', 'no-cache-filter', 'annotations', 'ulimits', 'entitlements']) {
    const v = f[key] as string[] | undefined;
    if (v) f[key] = [...new Set(v.filter((x) => x !== ''))];
  }
  if (t.contexts) {
    for (const [k, v] of Object.entries(t.contexts)) if (v === '' || v === null) delete t.contexts[k];
    if (Object.keys(t.contexts).length === 0) delete t.contexts;
  }
}

const byKey = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** One target as buildx's JSON shows it: its field order, maps sorted, empty values left out, null map values dropped. */
export function targetJson(t: Target): Record<string, unknown> {
  const f = t as unknown as Fields;
  const out: Record<string, unknown> = {};
  for (const [key, kind] of Object.entries(TARGET_FIELDS)) {
    const v = f[key];
    if (v === undefined || v === null) continue;
    if (kind === 'list' && (v as string[]).length === 0) continue;
    if (kind === 'map') {
      const entries = Object.entries(v as Record<string, string | null>).filter(([, x]) => x !== null).sort(([x], [y]) => byKey(x, y));
      if (entries.length === 0) continue;
      out[key] = Object.fromEntries(entries);
      continue;
    }
    out[key] = v;
  }
  return out;
}

/** Go's encoding/json text: HTML-safe escapes and \u00XX for control characters JSON.stringify spells \b, \f. */
export function goJson(value: unknown): string {
  return JSON.stringify(value, null, 2)
    .replace(/\\[bf]/g, (m) => (m === '\\b' ? '\\u0008' : '\\u000c'))
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `bake --print`: {"group": {...}, "target": {...}} with names sorted, as buildx marshals its maps. */
export function printJson(groups: Map<string, Group>, targets: Map<string, Target>): string {
  const g = Object.fromEntries([...groups.entries()].sort(([x], [y]) => byKey(x, y)).map(([k, v]) => [k, { ...(v.description ? { description: v.description } : {}), targets: v.targets }]));
  const t = Object.fromEntries([...targets.entries()].sort(([x], [y]) => byKey(x, y)).map(([k, v]) => [k, targetJson(v)]));
  return goJson(groups.size > 0 ? { group: g, target: t } : { target: t });
}
