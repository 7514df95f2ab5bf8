// Where current BuildKit differs from the v0.11.6 reference daemon: small edits of the recorded
// result, each naming the upstream code it follows (moby/buildkit master, read with its source).
import type { Case, Result } from '../lib/types.js';

type Upstream = NonNullable<Case['upstream']>;

export function historyAt(i: number, createdBy: string): (r: Result) => Result {
  return (r) => { r.history![i].created_by = createdBy; return r; };
}

export function allHistory(edit: (s: string) => string): (r: Result) => Result {
  return (r) => { for (const h of r.history ?? []) h.created_by = edit(h.created_by); return r; };
}

export function chain(...edits: ((r: Result) => Result)[]): (r: Result) => Result {
  return (r) => edits.reduce((acc, e) => e(acc), r);
}

/**
 * fsutil copy.go createParentDirs: a directory COPY --parents makes only to hold an included
 * path gets its source's times when made, and then the copy's own time as entries land in it
 * (copyFileInfo runs again only for directories the patterns include themselves).
 */
export function parentsMadeLate(...paths: string[]): (r: Result) => Result {
  return (r) => { for (const f of r.files ?? []) if (paths.includes(f.path)) delete f.mtime; return r; };
}

/**
 * A hand-written result of metadata steps on the base image, completed as BuildKit writes it:
 * each entry says it comes from the Dockerfile frontend (convert.go's historyComment), and
 * exporter/containerimage/writer.go normalizeLayersAndHistory gives the new entries and the
 * image the base image's last time, with no new layer (the busybox test image's is 0).
 */
export function onBaseTime(r: Result): Result {
  const baseTime = '1970-01-01T00:00:00.000Z';
  return { ...r, config: { ...r.config, created: baseTime }, history: r.history?.map((h) => ({ ...h, created: baseTime, comment: 'buildkit.dockerfile.v0' })) };
}

export const error = (text: string): Result => ({ ok: false, error: text });

/** dockerfile2llb/convert_copy.go: heredoc sources are llb.Mkfile(f, 0644, data) (v0.11.6: 0664). */
export const heredocMode: Upstream = {
  change: 'convert_copy.go creates COPY/ADD heredoc files with mode 0644 (v0.11.6: 0664)',
  patch: (r) => { for (const f of r.files ?? []) if (f.mode === '664') f.mode = '644'; return r; },
};

/** dockerfile2llb/convert.go dispatchArg: the history names the value in force (build arg or global). */
export function argHistory(patch: (r: Result) => Result): Upstream {
  return { change: 'convert.go dispatchArg writes "ARG k=v" with the value in force (build-arg override or inherited global), after resolving it', patch };
}

/** dockerfile2llb/convert_copy.go: the COPY/ADD history names --parents, --chown and --chmod. */
export function copyFlagsHistory(flags: string): Upstream {
  return {
    change: 'convert_copy.go writes --parents, --chown=, --chmod= into the COPY/ADD history',
    patch: allHistory((s) => s.replace(/^(COPY|ADD) /, `$1 ${flags} `)),
  };
}

/** Go's fmt %+v of docker-image-spec's HealthcheckConfig, as current BuildKit writes it. */
export function healthHistory(test: string[], d: { interval?: string; timeout?: string; startPeriod?: string; startInterval?: string; retries?: number } = {}): string {
  return `HEALTHCHECK {Test:[${test.join(' ')}] Interval:${d.interval ?? '0s'} Timeout:${d.timeout ?? '0s'} StartPeriod:${d.startPeriod ?? '0s'} StartInterval:${d.startInterval ?? '0s'} Retries:${d.retries ?? 0}}`;
}

export const HEALTH_CHANGE = 'convert.go dispatchHealthcheck writes fmt.Sprintf("HEALTHCHECK %+v", HealthcheckConfig) (docker-image-spec, with StartInterval)';

export const FLAG_PREFIX_CHANGE = 'bflag.go names the flag with its "--" prefix in errors (moby/buildkit 31a7c177e)';

/** fsutil copy (2025-02 "copy: fix custom chmod for parent directories"): directories a COPY creates get an octal --chmod. */
export function chmodParents(flags: string, modes: Record<string, string>): Upstream {
  const history = copyFlagsHistory(flags).patch!;
  return {
    change: 'convert_copy.go names --chmod in the history; fsutil creates missing directories with an octal --chmod (tonistiigi/fsutil 183e7fb)',
    patch: (r) => {
      for (const f of r.files ?? []) if (modes[f.path]) f.mode = modes[f.path];
      return history(r);
    },
  };
}
