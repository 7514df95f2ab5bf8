// The context sync keeps, per (directory, builder, credentials), the last manifest it synced as
// `base-<key>.jsonl` in the context cache dir, so the next sync sends a delta. Nothing else ever
// removes them: every directory ever built against every builder left one (a 20,000-file context
// leaves a few MB). Keys are hashes, so which context a file belongs to cannot be told: the
// newest ones are kept (a file is appended to whenever its context changed) and old ones expire.
// Bases an older client wrote whole as `base-<key>.json` are never read again and go at once.
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { defaultContextCacheDir } from '@buildyard/context';

export interface PruneSyncBasesOptions {
  /** Bases kept whatever their age (newest first). */
  keep?: number;
  /** Bases older than this go even when fewer than `keep` are left. */
  maxAgeMs?: number;
  /** Half-written bases of a process that died (`base-*.jsonl.<pid>.<random>.tmp`) go after this. */
  tmpAgeMs?: number;
  now?: number;
}

const BASE = /^base-[0-9a-f]+\.jsonl$/;
const LEGACY = /^base-[0-9a-f]+\.json$/;
const TMP = /^base-[0-9a-f]+\.jsonl?\..+\.tmp$/;

/** Removes all but the newest `keep` delta-sync bases and any older than `maxAgeMs`; returns how many went. */
export async function pruneSyncBases(dir: string = defaultContextCacheDir(), o: PruneSyncBasesOptions = {}): Promise<number> {
  const keep = o.keep ?? 64;
  const maxAgeMs = o.maxAgeMs ?? 30 * 24 * 3600 * 1000;
  const tmpAgeMs = o.tmpAgeMs ?? 3600 * 1000;
  const now = o.now ?? Date.now();
  let names: string[];
  try { names = await readdir(dir); } catch { return 0; }
  const files = (await Promise.all(names.filter((n) => BASE.test(n) || LEGACY.test(n) || TMP.test(n)).map(async (name) => {
    // Another client may remove or replace a file meanwhile: it is simply left out.
    try { return { name, mtimeMs: (await stat(join(dir, name))).mtimeMs }; } catch { return undefined; }
  }))).filter((f) => f !== undefined);
  const bases = files.filter((f) => BASE.test(f.name)).sort((a, b) => b.mtimeMs - a.mtimeMs);
  const doomed = [
    ...bases.filter((f, i) => i >= keep || now - f.mtimeMs > maxAgeMs),
    ...files.filter((f) => LEGACY.test(f.name) || (TMP.test(f.name) && now - f.mtimeMs > tmpAgeMs)),
  ];
  await Promise.all(doomed.map((f) => rm(join(dir, f.name), { force: true })));
  return doomed.length;
}
