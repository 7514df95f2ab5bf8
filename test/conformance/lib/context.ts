// Writes a case's build context to a directory: the Dockerfile (with the base image filled in)
// and its files, including symlinks, modes, fifos and sockets that a text table cannot hold.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { chmod, link, lutimes, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setXattrs } from '@buildyard/snapshot';
import type { Case } from './types.js';

export const BASE_TOKEN = '{{BASE}}';
/** The case's web server (Case.served), e.g. http://203.0.113.1:8080. */
export const URL_TOKEN = '{{URL}}';
/**
 * Every context entry's mtime unless its spec sets one: a fixed time, so the suite can check
 * where a builder keeps the context's times (COPY does) and where it stamps its own. The same for
 * every case: cache keys ignore times (in both builders), so a step a case shares with an earlier
 * one brings that one's times, and a run of some cases must see what a run of all of them sees.
 */
export const CONTEXT_MTIME = 1_000_000_000;

export const CRAFTED_TOKEN = '{{CRAFTED}}';

export function dockerfileText(c: Case, base: string, url = URL_TOKEN, crafted = CRAFTED_TOKEN): string {
  return c.dockerfile.split(BASE_TOKEN).join(base).split(URL_TOKEN).join(url).split(CRAFTED_TOKEN).join(crafted);
}

/** Stable digest of what defines a case, so a stale expectation is noticed. */
export function caseDigest(c: Case): string {
  const { upstream: _u, divergence: _d, ...rest } = c;
  return createHash('sha256').update(JSON.stringify(rest)).digest('hex').slice(0, 16);
}

async function makeSocket(path: string): Promise<void> {
  // A listening socket leaves its file behind when the server is dropped without close().
  const server = createServer();
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(path, () => resolve()); });
  server.unref();
  (server as unknown as { _handle?: { close(): void } })._handle?.close();
}

export async function writeContext(c: Case, dir: string, base: string, url?: string, crafted?: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  const name = c.dockerfileName ?? 'Dockerfile';
  await writeFile(join(dir, name), dockerfileText(c, base, url, crafted));
  const mtime = CONTEXT_MTIME;
  const dated = new Map<string, number>([[dir, mtime], [join(dir, name), mtime]]);
  const dateParents = (abs: string) => {
    for (let d = dirname(abs); d.startsWith(dir + '/'); d = dirname(d)) if (!dated.has(d)) dated.set(d, mtime);
  };
  for (const [rel, spec] of Object.entries(c.files ?? {})) {
    const abs = join(dir, rel);
    await mkdir(dirname(abs), { recursive: true });
    dateParents(abs);
    if (typeof spec === 'string') {
      await writeFile(abs, spec);
      await chmod(abs, 0o644);
      dated.set(abs, mtime);
      continue;
    }
    if (spec.symlink !== undefined) await symlink(spec.symlink, abs);
    else if (spec.hardlink !== undefined) { await link(join(dir, spec.hardlink), abs); continue; }
    else if (spec.dir) await mkdir(abs, { recursive: true });
    else if (spec.fifo) execFileSync('mkfifo', [abs]);
    else if (spec.socket) await makeSocket(abs);
    else await writeFile(abs, spec.base64 !== undefined ? Buffer.from(spec.base64, 'base64') : spec.content ?? '');
    if (spec.symlink === undefined) await chmod(abs, spec.mode ?? (spec.dir ? 0o755 : 0o644));
    // Values as latin1 text (so bytes 0x80-0xff can be written too); set last, as a chmod keeps them.
    if (spec.xattrs) setXattrs(abs, Object.entries(spec.xattrs).map(([name, value]) => [name, Buffer.from(value, 'latin1')]));
    dated.set(abs, spec.mtime ?? mtime);
  }
  for (const [abs, t] of dated) await lutimes(abs, t, t);
  return join(dir, name);
}
