// Git URLs as BuildKit's Dockerfile frontend reads them (dfgitutil.ParseGitRef over
// gitutil.ParseURL): `https://host/repo.git#ref:subdir`, `git://host/repo#ref`,
// `ssh://user@host/repo`, scp-style `user@host:repo.git#ref`, and the query form
// (`?ref=`, `?tag=`, `?branch=`, `?subdir=`, `?keep-git-dir`, `?checksum=`/`?commit=`).
// One parser for every place a git URL appears: the build context, --build-context and ADD.
import { posix } from 'node:path';

export type GitScheme = 'http' | 'https' | 'ssh' | 'git';

export interface GitRef {
  scheme: GitScheme;
  /** The repository URL git is given: the URL without fragment and query. */
  remote: string;
  host: string;
  /** Branch, tag, full ref or commit; empty: the remote's HEAD. */
  ref: string;
  /** Directory inside the repository, cleaned, without a leading slash; empty: the root. */
  subdir: string;
  /** The commit the ref must resolve to (`?checksum=` / `?commit=`), when given. */
  checksum?: string;
  keepGitDir?: boolean;
  /** Repository name without `.git`, e.g. for ADD's default file name. */
  shortName: string;
}

/** A string that names a git repository but cannot be used as one. */
export class GitRefError extends Error {}

const SUPPORTED = new Set<GitScheme>(['http', 'https', 'ssh', 'git']);
// sshutil's implicit-SSH form: user@host:path[?query][#fragment]
const SCP_STYLE = /^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$/;

/** BuildKit's IsGitTransport: a URL git would fetch, whether or not it names a repository. */
export function isGitTransport(s: string): boolean {
  const proto = /^([a-zA-Z0-9]+):\/\//.exec(s)?.[1]?.toLowerCase();
  return proto ? SUPPORTED.has(proto as GitScheme) : SCP_STYLE.test(s);
}

/**
 * Parses `s` as BuildKit does for a build context or ADD source: undefined when it is not a git
 * reference (a plain http(s) URL without `.git`, a local path); throws GitRefError when it is one
 * but malformed (a conflicting query, an unknown query key).
 */
export function parseGitRef(s: string): GitRef | undefined {
  if (s.startsWith('./') || s.startsWith('../')) return undefined;
  let scheme: GitScheme;
  let host: string;
  let path: string;
  let query: URLSearchParams;
  let fragment: string;
  let remote: string;
  const proto = /^([a-zA-Z0-9]+):\/\//.exec(s)?.[1]?.toLowerCase();
  if (proto) {
    if (!SUPPORTED.has(proto as GitScheme)) return undefined;
    let url: URL;
    try {
      url = new URL(s);
    } catch {
      throw new GitRefError(`invalid git URL ${s.slice(0, 200)}`);
    }
    scheme = proto as GitScheme;
    host = url.host;
    path = decodeURIComponent(url.pathname);
    query = url.searchParams;
    fragment = decodeURIComponent(url.hash.replace(/^#/, ''));
    // http(s) URLs are repositories only when the path ends in .git (else a tarball or file).
    if ((scheme === 'http' || scheme === 'https') && !path.endsWith('.git')) return undefined;
    const bare = new URL(url.href);
    bare.hash = '';
    bare.search = '';
    remote = bare.href;
  } else {
    const m = SCP_STYLE.exec(s);
    if (!m) return undefined;
    scheme = 'ssh';
    host = m[2]!;
    path = m[3]!;
    query = new URLSearchParams(m[4] ?? '');
    fragment = m[5] ?? '';
    remote = `${m[1]}@${m[2]}:${m[3]}`;
  }
  const cut = fragment.indexOf(':');
  let ref = cut < 0 ? fragment : fragment.slice(0, cut);
  let subdir = cut < 0 ? '' : cleanSubdir(fragment.slice(cut + 1));
  const res: GitRef = { scheme, remote, host, ref, subdir, shortName: (path.split('/').pop() ?? '').replace(/\.git$/, '') };
  const once = (key: string): string | undefined => {
    const values = query.getAll(key);
    if (values.length > 1) throw new GitRefError(`git URL ${s.slice(0, 200)}: query "${key}" has multiple values`);
    return values[0];
  };
  const flag = (key: string): boolean | undefined => {
    const v = once(key);
    if (v === undefined) return undefined;
    if (v === '' || /^(1|t|true)$/i.test(v)) return true;
    if (/^(0|f|false)$/i.test(v)) return false;
    throw new GitRefError(`git URL ${s.slice(0, 200)}: invalid ${key} value "${v.slice(0, 50)}"`);
  };
  for (const key of new Set(query.keys())) {
    if (!['ref', 'tag', 'branch', 'subdir', 'checksum', 'commit', 'keep-git-dir', 'submodules'].includes(key)) {
      throw new GitRefError(`git URL ${s.slice(0, 200)}: unexpected query "${key.slice(0, 50)}"`);
    }
    if (!['keep-git-dir', 'submodules'].includes(key) && once(key) === '') throw new GitRefError(`git URL ${s.slice(0, 200)}: query "${key}" has no value`);
  }
  const setRef = (value: string) => {
    if (ref !== '' && ref !== value) throw new GitRefError(`git URL ${s.slice(0, 200)}: ref conflicts: "${ref}" vs "${value.slice(0, 100)}"`);
    ref = value;
  };
  const qRef = once('ref');
  if (qRef !== undefined) setRef(qRef);
  const tag = once('tag');
  const branch = once('branch');
  if (tag !== undefined && branch !== undefined) throw new GitRefError(`git URL ${s.slice(0, 200)}: branch conflicts with tag`);
  if (tag !== undefined) setRef(tag.startsWith('refs/tags/') ? tag : `refs/tags/${tag}`);
  if (branch !== undefined) setRef(branch.startsWith('refs/heads/') ? branch : `refs/heads/${branch}`);
  const qSubdir = once('subdir');
  if (qSubdir !== undefined) {
    const cleaned = cleanSubdir(qSubdir);
    if (subdir !== '' && subdir !== cleaned) throw new GitRefError(`git URL ${s.slice(0, 200)}: subdir conflicts: "${subdir}" vs "${cleaned.slice(0, 100)}"`);
    subdir = cleaned;
  }
  const checksum = once('checksum') ?? once('commit');
  const keepGitDir = flag('keep-git-dir');
  flag('submodules');
  // git's check-ref-format refuses a name that begins with `-`: here it would be read as an option.
  if (ref.startsWith('-')) throw new GitRefError(`git URL ${s.slice(0, 200)}: ref "${ref.slice(0, 100)}" begins with "-", which no git ref does; name a branch, tag or commit`);
  res.ref = ref;
  res.subdir = subdir;
  if (checksum !== undefined) res.checksum = checksum;
  if (keepGitDir !== undefined) res.keepGitDir = keepGitDir;
  return res;
}

/** path.Join("/", subdir) without the leading slash: `..` cannot climb above the repository. */
function cleanSubdir(subdir: string): string {
  return posix.join('/', subdir).replace(/^\/+/, '').replace(/\/+$/, '');
}
