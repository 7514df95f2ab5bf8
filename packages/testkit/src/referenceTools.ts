// Where the reference BuildKit tools (buildkitd, buildctl, docker-buildx) are: they are built
// outside the project and sit in ../shared/tools beside the repo (see that folder's README), or in
// the folder BUILDYARD_REFERENCE_TOOLS names. Tests that need them skip, saying why, when absent.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type ReferenceTool = 'buildkitd' | 'buildctl' | 'docker-buildx';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The folder searched for the reference tools. */
export function referenceToolsDir(): string {
  return process.env.BUILDYARD_REFERENCE_TOOLS ?? resolve(repoRoot, '../shared/tools');
}

/** The tools' paths, or the reason a test must skip (one line naming what is missing). */
export function referenceTools(...names: ReferenceTool[]): { paths: Record<ReferenceTool, string>; missing?: string } {
  const dir = referenceToolsDir();
  const paths = Object.fromEntries(names.map((n) => [n, join(dir, n)])) as Record<ReferenceTool, string>;
  const absent = names.filter((n) => !existsSync(paths[n]));
  return absent.length === 0 ? { paths } : { paths, missing: `${absent.join(', ')} not found in ${dir}: set BUILDYARD_REFERENCE_TOOLS to the folder of BuildKit's reference tools` };
}
