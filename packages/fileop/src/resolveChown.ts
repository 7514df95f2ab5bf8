// --chown (and the USER a WORKDIR is created for) resolved the way BuildKit's file ops do
// (solver/llbsolver/ops/user_linux.go readUser): each half is an id or a name; a name is looked
// up in the destination's /etc/passwd or /etc/group, and a name that is not there resolves to 0
// instead of failing. A user name also gives its primary group.
import { readFile } from 'node:fs/promises';
import type { Owner } from './destFs.js';
import { resolveInRoot } from './destFs.js';
import { FileOpError } from './FileOpError.js';

async function readEntries(root: string, file: string): Promise<string[][]> {
  try {
    const text = await readFile(await resolveInRoot(root, file), 'utf8');
    return text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    // A missing or unreadable file is "not found", as BuildKit treats ErrNotExist/ENOTDIR.
    return [];
  }
}

function numeric(s: string): number | undefined {
  return /^\d+$/.test(s) && Number(s) <= 0xffffffff ? Number(s) : undefined;
}

/** Resolves "user[:group]" against the rootfs at `root`. */
export async function resolveChown(root: string, spec: string): Promise<Owner> {
  const colon = spec.indexOf(':');
  const user = colon < 0 ? spec : spec.slice(0, colon);
  const group = colon < 0 ? undefined : spec.slice(colon + 1);
  const owner: Owner = { uid: 0, gid: 0 };
  const uid = numeric(user);
  if (uid !== undefined) {
    owner.uid = uid;
    owner.gid = uid;
  } else if (user !== '') {
    const found = (await readEntries(root, '/etc/passwd')).find((f) => f[0] === user);
    if (found) {
      owner.uid = numeric(found[2] ?? '') ?? 0;
      owner.gid = numeric(found[3] ?? '') ?? 0;
    }
  }
  if (group !== undefined && group !== '') {
    const gid = numeric(group);
    if (gid !== undefined) owner.gid = gid;
    else {
      const found = (await readEntries(root, '/etc/group')).find((f) => f[0] === group);
      if (found) owner.gid = numeric(found[2] ?? '') ?? 0;
    }
  }
  return owner;
}

/**
 * Resolves --chown (or the USER a WORKDIR is made for) of a step BuildKit runs on an empty base:
 * a COPY --link (made on llb.Scratch()) or any step of a stage that has no layer yet (FROM
 * scratch). llb.WithUser takes ids and "root" as numbers and marks any other name for lookup in
 * the step's input, which scratch lacks (index -1), so BuildKit fails such a step.
 */
export function resolveChownOnScratch(spec: string): Owner {
  const colon = spec.indexOf(':');
  const [user, group] = colon < 0 ? [spec, undefined] : [spec.slice(0, colon), spec.slice(colon + 1)];
  const id = (s: string): number | undefined => (s === 'root' || s === '' ? 0 : numeric(s));
  const uid = id(user);
  const gid = group === undefined ? uid : id(group);
  if (uid === undefined || gid === undefined) throw new FileOpError('EBADARG', `invalid user index: -1 (user "${spec}": a name cannot be looked up on an empty base, FROM scratch before any file or a COPY --link; use numeric ids)`);
  return { uid, gid };
}
