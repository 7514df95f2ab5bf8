// `--cache-from type=local,src=DIR` and `--cache-to type=local,dest=DIR` happen on this machine:
// the builder never reads or writes a path of its own. An import syncs DIR (an OCI layout) like
// a build context and names the context id; an export streams back in the Solve stream as an
// OCI layout that we write into DIR, keeping the other tags already in its index.json (the
// writer merges it as it does a `type=oci,tar=false` output's).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ExportedFile, KeyValueSpec } from '@buildyard/proto';
import { ExportedFileWriter } from './ExportedFileWriter.js';

export interface LocalCaches {
  /** What the Solve request carries: local specs without paths. */
  cacheFrom: KeyValueSpec[];
  cacheTo: KeyValueSpec[];
  /** Writes a streamed file of a local cache export. */
  write(file: ExportedFile): Promise<void>;
  /** After a successful build: merges each export's index.json with the tags DIR held before. */
  finish(): Promise<void>;
  abort(): Promise<void>;
  /** Dirs written, for the summary. */
  readonly written: Set<string>;
}

/**
 * Prepares the local caches of a build. `sync(dir)` uploads a directory and returns its context
 * id; `warn` reports an import that is skipped (as buildx does, the build goes on without it).
 */
export async function prepareLocalCaches(
  cacheFrom: readonly KeyValueSpec[], cacheTo: readonly KeyValueSpec[],
  sync: (dir: string) => Promise<string>, warn: (message: string) => void,
): Promise<LocalCaches> {
  const from: KeyValueSpec[] = [];
  for (const spec of cacheFrom) {
    if (spec.type !== 'local') { from.push(spec); continue; }
    const { src, ...rest } = spec.attrs;
    if (!src || !existsSync(join(src, 'index.json'))) {
      warn(`--cache-from type=local,src=${src}: no OCI layout there (no index.json); building without it`);
      continue;
    }
    from.push({ type: 'local', attrs: { ...rest, context: await sync(src) } });
  }
  // The writer sees each local export as an OCI layout directory output, by cache_to index.
  const asOutputs = cacheTo.map((spec): KeyValueSpec => (spec.type === 'local' ? { type: 'oci', attrs: { dest: spec.attrs.dest ?? '', tar: 'false' } } : { type: spec.type, attrs: {} }));
  const writer = new ExportedFileWriter(asOutputs);
  return {
    cacheFrom: from,
    cacheTo: cacheTo.map((spec) => {
      if (spec.type !== 'local') return spec;
      const { dest: _dest, ...rest } = spec.attrs;
      return { type: 'local', attrs: rest };
    }),
    write: (file) => writer.write(file),
    abort: () => writer.abort(),
    written: writer.written,
    finish: () => writer.finish(),
  };
}

