import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * Removes what killed workers leave under a state directory: runc containers (in any
 * `<dir>/<worker>/runc/runc` root) and mounts (deepest first, lazily), so the directory can be
 * deleted. Used by cluster teardown in tests and by `buildyard down`.
 */
export function cleanupUnder(dir: string): { containers: number; mounts: number } {
  const root = resolve(dir);
  let containers = 0;
  let entries: string[] = [];
  try { entries = readdirSync(root); } catch { /* nothing there */ }
  for (const entry of entries) {
    const runcRoot = join(root, entry, 'runc/runc');
    const listed = spawnSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8' });
    for (const id of (listed.status === 0 ? listed.stdout : '').split('\n').filter(Boolean)) {
      spawnSync('runc', ['--root', runcRoot, 'delete', '--force', id]);
      containers++;
    }
  }
  const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1])
    .filter((m): m is string => !!m && (m === root || m.startsWith(root + '/')))
    .sort((a, b) => b.length - a.length);
  for (const mountpoint of mounts) spawnSync('umount', ['-l', mountpoint]);
  return { containers, mounts: mounts.length };
}
