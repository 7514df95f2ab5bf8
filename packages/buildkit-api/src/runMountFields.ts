import { parse } from '@buildyard/dockerfile';

/**
 * The fields (`key=value`, keys lower-cased) of every `RUN --mount=type=<type>` flag of a
 * Dockerfile, as written (before ARG expansion). The session can only be asked for secrets and
 * agents by id, so the ids come from the Dockerfile, as BuildKit's frontend finds them.
 */
export function runMountFields(dockerfile: string, filename: string, type: string): Array<Map<string, string>> {
  const found: Array<Map<string, string>> = [];
  for (const ins of parse(dockerfile, { file: filename }).instructions) {
    if (ins.keyword !== 'RUN') continue;
    for (const flag of ins.flags) {
      if (flag.name !== 'mount' || !flag.value) continue;
      const fields = new Map(flag.value.split(',').map((f) => { const i = f.indexOf('='); return i < 0 ? [f.trim().toLowerCase(), ''] : [f.slice(0, i).trim().toLowerCase(), f.slice(i + 1).trim()]; }));
      if (fields.get('type') === type) found.push(fields);
    }
  }
  return found;
}
