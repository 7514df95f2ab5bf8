// Docker's USER resolution: BuildKit's GetUser fast path (`uid:gid`, `root`) and then
// moby/sys/user GetExecUser semantics against the rootfs's /etc/passwd and /etc/group.
import { readFile } from 'node:fs/promises';
import { resolveInRoot } from './resolveInRoot.js';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: only for the implicit form (`USER name` without a group). */
  additionalGids: number[];
  /** Home directory from passwd, or `/` when there is no entry (Docker's default). */
  home: string;
}

export interface PasswdEntry { name: string; uid: number; gid: number; home: string }
export interface GroupEntry { name: string; gid: number; members: string[] }

const maxId = 2 ** 31 - 1;

/** The colon-separated fields of each line of /etc/passwd or /etc/group (blank lines and comments skipped). */
function colonRecords(text: string): string[][] {
  return text.split('\n').map((raw) => raw.trim()).filter((line) => line !== '' && !line.startsWith('#')).map((line) => line.split(':'));
}

export function parsePasswd(text: string): PasswdEntry[] {
  return colonRecords(text).map((f) => ({ name: f[0] ?? '', uid: toInt(f[2]), gid: toInt(f[3]), home: f[5] ?? '' }));
}

export function parseGroup(text: string): GroupEntry[] {
  return colonRecords(text).map((f) => ({
    name: f[0] ?? '', gid: toInt(f[2]), members: (f[3] ?? '').split(',').map((m) => m.trim()).filter((m) => m !== ''),
  }));
}

/** Pure resolution over already-read files; `undefined` means the file does not exist. */
export function resolveUserFromFiles(spec: string, passwd: PasswdEntry[] | undefined, group: GroupEntry[] | undefined): ResolvedUser {
  const fast = parseUidGid(spec);
  if (fast) return { ...fast, additionalGids: [], home: homeFor(fast.uid, passwd) };
  // BuildKit: the default user is uid 0 looked up in passwd (so root's groups apply), and
  // falls back to 0:0 when that lookup fails.
  if (spec === '') {
    try {
      return resolveUserFromFiles('0', passwd, group);
    } catch {
      return { uid: 0, gid: 0, additionalGids: [], home: '/' };
    }
  }
  const userSpec = spec;

  const [userArg = '', groupArg = ''] = userSpec.split(':');
  const uidArg = parseNumeric(userArg);
  const gidArg = parseNumeric(groupArg);
  const user: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/' };

  const users = (passwd ?? []).filter((u) => {
    if (userArg === '') return u.uid === user.uid;
    if (uidArg !== undefined) return u.uid === uidArg;
    return u.name === userArg;
  });
  let matchedName = '';
  if (users.length > 0) {
    const u = users[0] as PasswdEntry;
    matchedName = u.name;
    user.uid = u.uid;
    user.gid = u.gid;
    user.home = u.home || '/';
  } else if (userArg !== '') {
    if (uidArg === undefined) throw new Error(`unable to find user ${userArg}: no matching entries in passwd file`);
    user.uid = uidArg;
  }

  if (groupArg !== '') {
    const match = (group ?? []).find((g) => (gidArg !== undefined ? g.gid === gidArg : g.name === groupArg));
    if (match) user.gid = match.gid;
    else if (gidArg !== undefined) user.gid = gidArg;
    else throw new Error(`unable to find group ${groupArg}: no matching entries in group file`);
  } else if (matchedName !== '') {
    user.additionalGids = (group ?? []).filter((g) => g.members.includes(matchedName)).map((g) => g.gid);
  }
  return user;
}

/** Resolves a Docker USER spec ("", "name", "uid", "name:group", "uid:gid") inside `rootfs`. */
export async function resolveUser(rootfs: string, userSpec: string): Promise<ResolvedUser> {
  const fast = parseUidGid(userSpec);
  const passwd = await readOptional(rootfs, '/etc/passwd');
  if (fast) return { ...fast, additionalGids: [], home: homeFor(fast.uid, passwd === undefined ? undefined : parsePasswd(passwd)) };
  const group = await readOptional(rootfs, '/etc/group');
  return resolveUserFromFiles(userSpec, passwd === undefined ? undefined : parsePasswd(passwd), group === undefined ? undefined : parseGroup(group));
}

// BuildKit's ParseUIDGID: only when both halves are numeric (or "root") is passwd skipped.
function parseUidGid(spec: string): { uid: number; gid: number } | undefined {
  const i = spec.indexOf(':');
  if (i < 0) return undefined;
  const uid = parseFastId(spec.slice(0, i));
  const gid = parseFastId(spec.slice(i + 1));
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

function parseFastId(s: string): number | undefined {
  if (s === 'root') return 0;
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function parseNumeric(s: string): number | undefined {
  if (!/^-?\d+$/.test(s)) return undefined;
  const n = Number(s);
  if (n < 0 || n > maxId) throw new Error(`user or group id ${s} is out of range: use an id between 0 and ${maxId}`);
  return n;
}

function homeFor(uid: number, passwd: PasswdEntry[] | undefined): string {
  return passwd?.find((u) => u.uid === uid)?.home || '/';
}

function toInt(s: string | undefined): number {
  const n = Number(s);
  return Number.isInteger(n) ? n : -1;
}

async function readOptional(rootfs: string, path: string): Promise<string | undefined> {
  try {
    return await readFile(resolveInRoot(rootfs, path), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
    throw err;
  }
}
