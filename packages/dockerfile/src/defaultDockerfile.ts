import { existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The Dockerfile of a context when none is named: `Dockerfile`, else `dockerfile` (BuildKit's
 * dockerui falls back to the lower-case name), else the `Dockerfile` path for the error.
 */
export function defaultDockerfilePath(contextDir: string): string {
  const upper = join(contextDir, 'Dockerfile');
  if (existsSync(upper)) return upper;
  const lower = join(contextDir, 'dockerfile');
  return existsSync(lower) ? lower : upper;
}
