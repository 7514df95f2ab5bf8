import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseDockerignore } from '@buildyard/fileop';

/**
 * Patterns from `<dir>/.dockerignore`, or [] when there is none. BuildKit also honours
 * `<Dockerfile>.dockerignore` next to the Dockerfile; pass that path as `file` to prefer it.
 */
export async function readDockerignore(dir: string, file?: string): Promise<string[]> {
  for (const path of file ? [file, join(dir, '.dockerignore')] : [join(dir, '.dockerignore')]) {
    try {
      return parseDockerignore(await readFile(path, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return [];
}
