// The image config's bytes as BuildKit writes them, so the same image has the same config digest
// (its image ID) from either builder. Hand-written because the bytes are Go's encoding/json's:
// struct fields in declaration order with omitempty, map keys sorted, HTML-safe string escapes
// and RFC 3339 times without trailing zero fractions; JSON.stringify does none of these.
import type { HistoryEntry, ImageConfig, ImageConfigFile } from '@buildyard/graph';
import { goString } from '@buildyard/oci';

/** A value already encoded. */
class Encoded {
  constructor(readonly json: string) {}
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/** Any JSON value the Go way; objects are maps (keys sorted). */
function goValue(v: unknown): string {
  if (v instanceof Encoded) return v.json;
  if (typeof v === 'string') return goString(v);
  if (Array.isArray(v)) return `[${v.map(goValue).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const map = v as Record<string, unknown>;
    return `{${Object.keys(map).sort(byBytes).map((k) => `${goString(k)}:${goValue(map[k])}`).join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}

/** encoding/json's omitempty: false, 0, "", null and empty slices and maps. */
function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return true;
  if (Array.isArray(v)) return v.length === 0;
  return typeof v === 'object' && !(v instanceof Encoded) && Object.keys(v as object).length === 0;
}

/** A Go struct: fields in order, each omitted when empty (omitempty). */
function goStruct(fields: Array<[name: string, value: unknown]>): Encoded {
  return new Encoded(`{${fields.filter(([, value]) => !isEmpty(value)).map(([name, value]) => `${goString(name)}:${goValue(value)}`).join(',')}}`);
}

/** A time as Go's time.Time marshals it (RFC 3339 with nanoseconds, trailing zeros dropped). */
export function goTime(time: string): string {
  // Read without a backtracking regexp: a base image's times are anyone's strings, and
  // `\.(\d*?)0+` over a megabyte of zeros is quadratic.
  const m = /^([^.]*)\.(\d+)(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (!m) return time;
  let end = m[2].length;
  while (end > 0 && m[2][end - 1] === '0') end--;
  return `${m[1]}${end > 0 ? `.${m[2].slice(0, end)}` : ''}${m[3]}`;
}

/** dockerspec.DockerOCIImageConfig: ocispec.ImageConfig's fields, then Docker's extensions. */
function runtimeConfig(c: ImageConfig): Encoded {
  const health = c.Healthcheck;
  return goStruct([
    ['User', c.User], ['ExposedPorts', c.ExposedPorts], ['Env', c.Env], ['Entrypoint', c.Entrypoint], ['Cmd', c.Cmd],
    ['Volumes', c.Volumes], ['WorkingDir', c.WorkingDir], ['Labels', c.Labels], ['StopSignal', c.StopSignal], ['ArgsEscaped', c.ArgsEscaped],
    ['Healthcheck', health && goStruct([
      ['Test', health.Test], ['Interval', health.Interval], ['Timeout', health.Timeout], ['StartPeriod', health.StartPeriod],
      ['StartInterval', health.StartInterval], ['Retries', health.Retries],
    ])],
    ['OnBuild', c.OnBuild], ['Shell', c.Shell],
  ]);
}

/** ocispec.History. */
function historyEntry(h: HistoryEntry): Encoded {
  return goStruct([['created', h.created && goTime(h.created)], ['created_by', h.created_by], ['author', h.author], ['comment', h.comment], ['empty_layer', h.empty_layer]]);
}

/**
 * The config as BuildKit's exporter writes it (patchImageConfig marshals it as a map, so its
 * top-level keys are sorted); fields Docker's image spec does not define are left out, as
 * BuildKit's frontend drops them when it reads a base image's config.
 */
export function imageConfigJson(file: ImageConfigFile): Buffer {
  const top: Record<string, unknown> = {
    architecture: file.architecture ?? '',
    config: runtimeConfig(file.config ?? {}),
    created: file.created === undefined ? null : goTime(file.created),
    history: file.history?.length ? file.history.map(historyEntry) : null,
    os: file.os ?? '',
    // ocispec.RootFS has no omitempty; no layers is a nil slice.
    rootfs: new Encoded(`{"type":${goString(file.rootfs?.type ?? 'layers')},"diff_ids":${file.rootfs?.diff_ids.length ? goValue(file.rootfs.diff_ids) : 'null'}}`),
  };
  if (file.author) top.author = file.author;
  if (file.variant) top.variant = file.variant;
  for (const key of ['os.version', 'os.features'] as const) if (!isEmpty(file[key])) top[key] = file[key];
  return Buffer.from(goValue(top));
}
