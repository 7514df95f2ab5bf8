import { chownSync, mkdirSync, statSync } from 'node:fs';
import { posix } from 'node:path';
import { resolveInRoot } from './resolveInRoot.js';

/** Creates the working directory inside `rootfs` if missing, each new level owned by the
 *  user (Docker and BuildKit do the same), following symlinks only within the rootfs. */
export function ensureWorkdir(rootfs: string, cwd: string, uid: number, gid: number): void {
  const parts = posix.resolve('/', cwd).split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) {
    const hostPath = resolveInRoot(rootfs, '/' + parts.slice(0, i).join('/'));
    let st;
    try {
      st = statSync(hostPath);
    } catch {
      mkdirSync(hostPath, { mode: 0o755 });
      chownSync(hostPath, uid, gid);
      continue;
    }
    if (!st.isDirectory()) throw new Error(`working directory ${cwd} is not a directory in the rootfs (/${parts.slice(0, i).join('/')} is a file): choose another WORKDIR`);
  }
}
