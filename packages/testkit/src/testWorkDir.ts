// A test's scratch directory, removed when the test's process exits. Test files run in a
// process each, so this is after their `after` hooks (clusters stopped, nothing writing): left
// behind, each run of the suite added its contexts, outputs and images to the machine's /tmp.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs = new Set<string>();

function removeAll(): void {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
}

/** A new directory under the system temp dir (`prefix` + random suffix), gone at process exit. */
export function testWorkDir(prefix: string): string {
  if (dirs.size === 0) process.once('exit', removeAll);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(dir);
  return dir;
}
