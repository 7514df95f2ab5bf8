// The git source: resolves a ref to its commit (`git ls-remote`) and checks that commit out
// (a shallow fetch when the server allows it), as BuildKit's git source does, with the system
// git binary. Every connection git opens goes through a per-fetch egress proxy that applies the
// build's network policy (see gitEgressProxy.ts); git runs with no system or user config, no
// hooks, no credential helpers, no prompts, and only the http, https and git transports (no
// file://, ext:: or ssh), so a URL cannot make it read the server's own files or run commands.
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { chmod, lstat, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GitFetchLimitError, startGitEgressProxy } from './gitEgressProxy.js';
import type { GitRef } from './gitRef.js';
import { AddressRefusedError } from './httpGet.js';

export interface GitFetchOptions {
  ref: GitRef;
  /** An empty scratch directory this fetch may use; the caller removes it. */
  workDir: string;
  /** The build's network policy (see HttpLimits.refuse). */
  refuse?: (address: string) => string | undefined;
  signal?: AbortSignal;
  /** All the git commands of one call together (default 600 s). */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** Longest silence from the remote (default 60 s). */
  idleTimeoutMs?: number;
  /** Most bytes the remote may send over all the git commands of one call (default 2 GiB). */
  maxBytes?: number;
  /** Most bytes and files the checked-out tree may hold (a small repository can list one blob
   *  millions of times): measured before anything is checked out. */
  maxTreeBytes?: number;
  maxTreeFiles?: number;
  gitBinary?: string;
}

/** A fetch failed: the message is one line for the user. */
export class GitFetchError extends Error {}

export interface FetchedGit {
  commit: string;
  /** The checked-out tree to use: the repository's subdir, inside workDir. */
  dir: string;
}

const FULL_SHA = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** The commit `opts.ref` names now on the remote (a full commit sha is taken as it is). */
export async function resolveGitCommit(opts: GitFetchOptions): Promise<string> {
  const { ref } = opts;
  if (FULL_SHA.test(ref.ref)) return ref.ref;
  const out = await withGit(opts, (git) => git(['ls-remote', '--', ref.remote], undefined));
  const refs = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, name] = line.split('\t');
    if (sha && name) refs.set(name, sha);
  }
  const want = ref.ref || 'HEAD';
  // git's own order for a short name, preferring an annotated tag's commit (the ^{} line).
  const candidates = want.startsWith('refs/') || want === 'HEAD' ? [want] : [`refs/heads/${want}`, `refs/tags/${want}`, `refs/${want}`];
  for (const name of candidates) {
    const sha = refs.get(`${name}^{}`) ?? refs.get(name);
    if (sha) return sha;
  }
  throw new GitFetchError(`git ${shown(ref)}: no ref "${want.slice(0, 100)}" on the remote; check the branch or tag after #`);
}

/** Checks `commit` of the repository out under workDir and answers the subdir's path. */
export async function fetchGit(opts: GitFetchOptions & { commit: string }): Promise<FetchedGit> {
  const repo = join(opts.workDir, 'repo');
  await mkdir(repo, { recursive: true });
  return withGit(opts, (run) => checkOut(opts, repo, (args) => run(['-C', repo, ...args], repo)));
}

async function checkOut(opts: GitFetchOptions & { commit: string }, repo: string, git: (args: string[]) => Promise<string>): Promise<FetchedGit> {
  const { ref, commit } = opts;
  await git(['init', '-q']);
  await git(['remote', 'add', 'origin', ref.remote]);
  const named = ref.ref !== '' && !FULL_SHA.test(ref.ref);
  try {
    // A named ref is fetched by name (what every server allows); a commit by its sha, which
    // needs a server that allows it, else everything is fetched and the commit looked up.
    await git(['fetch', '-q', '--depth=1', '--no-tags', 'origin', '--end-of-options', named ? ref.ref : commit]);
  } catch (err) {
    if (!(err instanceof GitFetchError) || /not reachable from builds|more than \d+ bytes|timed out|sent nothing for/.test(err.message)) throw err;
    await git(['fetch', '-q', '--no-tags', 'origin', '+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*']);
  }
  const fetched = (await git(['rev-parse', '--verify', '-q', named ? 'FETCH_HEAD^{commit}' : `${commit}^{commit}`]).catch(() => '')).trim();
  if (!fetched) throw new GitFetchError(`git ${shown(ref)}: commit ${commit} is not on the remote; check the ref after #`);
  if (ref.checksum && !fetched.startsWith(ref.checksum)) {
    throw new GitFetchError(`git ${shown(ref)}: ref "${ref.ref}" is commit ${fetched}, not the expected ${ref.checksum.slice(0, 64)}`);
  }
  await checkTreeSize(opts, repo, fetched);
  await git(['-c', 'advice.detachedHead=false', 'checkout', '-q', '--detach', fetched]);
  const dir = ref.subdir ? join(repo, ref.subdir) : repo;
  // Each component of the subdir must be a real directory of the checkout: a symlink in the
  // repository (e.g. `sub -> /etc`) would otherwise hand the server's files to the build.
  let at = repo;
  for (const part of ref.subdir ? ref.subdir.split('/') : []) {
    at = join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st?.isDirectory()) throw new GitFetchError(`git ${shown(ref)}: subdirectory "${ref.subdir.slice(0, 200)}" is not a directory of commit ${fetched.slice(0, 12)}; check the path after #ref:`);
  }
  return { commit: fetched, dir };
}

/** The URL as the user wrote it, for messages (credentials in it are not repeated). */
function shown(ref: GitRef): string {
  let remote = ref.remote;
  try {
    const u = new URL(remote);
    if (u.password) { u.password = '***'; remote = u.href; }
  } catch { /* scp-style */ }
  return (remote + (ref.ref || ref.subdir ? `#${ref.ref}${ref.subdir ? `:${ref.subdir}` : ''}` : '')).slice(0, 300);
}

// core.gitProxy program for git://: connects through the egress proxy with CONNECT.
const PROXY_COMMAND = (port: number) => `#!${process.execPath}
const net = require('node:net');
const [host, port] = process.argv.slice(2);
const s = net.connect(${port}, '127.0.0.1', () => s.write('CONNECT ' + host + ':' + port + ' HTTP/1.1\\r\\nHost: ' + host + ':' + port + '\\r\\n\\r\\n'));
let head = Buffer.alloc(0);
const onHead = (d) => {
  head = Buffer.concat([head, d]);
  const end = head.indexOf('\\r\\n\\r\\n');
  if (end < 0) return;
  s.off('data', onHead);
  if (!/^HTTP\\/1\\.[01] 200/.test(head.toString('latin1', 0, end))) { process.stderr.write('connection refused by the build network policy\\n'); process.exit(1); }
  if (head.length > end + 4) process.stdout.write(head.subarray(end + 4));
  s.pipe(process.stdout);
  process.stdin.pipe(s);
};
s.on('data', onHead);
s.on('close', () => process.exit(0));
s.on('error', () => process.exit(1));
`;

/** Every git this fetch runs: no system or user config, a scratch HOME, the C locale. */
const gitBaseEnv = (home: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C', LC_ALL: 'C', GIT_CONFIG_NOSYSTEM: '1', GIT_CONFIG_GLOBAL: '/dev/null',
});

/** What git writes as the committer into .git (never this host's user, host name or clock). */
const anonymousIdentity = {
  GIT_COMMITTER_NAME: 'buildyard', GIT_COMMITTER_EMAIL: 'buildyard@invalid', GIT_COMMITTER_DATE: '@0 +0000',
  GIT_AUTHOR_NAME: 'buildyard', GIT_AUTHOR_EMAIL: 'buildyard@invalid', GIT_AUTHOR_DATE: '@0 +0000',
};

/**
 * Refuses a commit whose tree is larger than the limits before it is checked out: a repository
 * of a few KiB can list one large blob in a tree listed many times over (a git bomb), and the
 * checkout would write every copy. `ls-tree` streams the tree's entries with their sizes; it is
 * stopped at the first one over a limit, so its output is never held whole.
 */
async function checkTreeSize(opts: GitFetchOptions, repo: string, commit: string): Promise<void> {
  const maxBytes = opts.maxTreeBytes ?? 10 * 1024 ** 3;
  const maxFiles = opts.maxTreeFiles ?? 1_000_000;
  const child = spawn(opts.gitBinary ?? 'git', ['-C', repo, 'ls-tree', '-r', '-l', '--full-tree', '--end-of-options', commit], {
    env: gitBaseEnv(join(opts.workDir, 'home')),
    stdio: ['ignore', 'pipe', 'ignore'], signal: opts.signal,
  });
  const exited = new Promise<number | null>((resolve) => { child.on('close', resolve); child.on('error', () => resolve(-1)); });
  let bytes = 0;
  let files = 0;
  let over: string | undefined;
  for await (const line of createInterface({ input: child.stdout! })) {
    // `<mode> <type> <object> <size>\t<path>`; a submodule's commit has no size (`-`).
    const size = Number(/^\S+ \S+ \S+ +(\d+)\t/.exec(line)?.[1] ?? 0);
    bytes += size;
    files++;
    if (bytes > maxBytes) over = `its files hold more than ${maxBytes} bytes`;
    else if (files > maxFiles) over = `it has more than ${maxFiles} files`;
    if (over) {
      child.kill('SIGKILL');
      break;
    }
  }
  const code = await exited;
  if (opts.signal?.aborted) throw opts.signal.reason;
  if (over) throw new GitFetchError(`git ${shown(opts.ref)}: commit ${commit.slice(0, 12)} is too large to check out: ${over} (limits.maxContextBytes, limits.maxContextFiles)`);
  if (code !== 0) throw new GitFetchError(`git ${shown(opts.ref)}: cannot list the tree of commit ${commit.slice(0, 12)} (git ls-tree exited ${code})`);
}

type RunGit = (args: string[], cwd: string | undefined) => Promise<string>;

/**
 * Runs `use` with the git commands of one fetch. They share one egress proxy, so one byte
 * budget, and one deadline: a fetch that falls back to a second, full fetch is held to the
 * same limits as one that does not.
 */
async function withGit<T>(opts: GitFetchOptions, use: (git: RunGit) => Promise<T>): Promise<T> {
  if (opts.ref.scheme === 'ssh') {
    throw new GitFetchError(`git ${shown(opts.ref)}: ssh git URLs need SSH credentials the builder does not have; use the repository's https:// URL`);
  }
  const home = join(opts.workDir, 'home');
  await mkdir(home, { recursive: true });
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const deadline = Date.now() + timeoutMs;
  const proxy = await startGitEgressProxy({ refuse: opts.refuse, maxBytes: opts.maxBytes ?? 2 * 1024 ** 3, connectTimeoutMs: opts.connectTimeoutMs ?? 30_000, idleTimeoutMs: opts.idleTimeoutMs ?? 60_000 });
  try {
    const proxyCommand = join(home, 'git-proxy.cjs');
    await writeFile(proxyCommand, PROXY_COMMAND(proxy.port));
    await chmod(proxyCommand, 0o700);
    const env: NodeJS.ProcessEnv = {
      ...gitBaseEnv(home), GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: '/bin/false',
      GIT_ALLOW_PROTOCOL: 'http:https:git', GIT_PROXY_COMMAND: proxyCommand, GIT_SSH_COMMAND: '/bin/false',
      ...anonymousIdentity,
    };
    const config = [
      `http.proxy=${proxy.url}`, 'core.hooksPath=/dev/null', 'core.fsmonitor=false', 'protocol.file.allow=never',
      'credential.helper=', 'submodule.recurse=false', 'core.symlinks=true', 'init.defaultBranch=main',
      // No reflog: `.git/logs` (kept by ADD --keep-git-dir) would name this host's user and the time.
      'core.logAllRefUpdates=false',
    ].flatMap((c) => ['-c', c]);
    return await use((args, cwd) => new Promise<string>((resolve, reject) => {
      execFile(opts.gitBinary ?? 'git', [...config, ...args], {
        env, cwd, signal: opts.signal, timeout: Math.max(1, deadline - Date.now()), killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8',
      }, (err, stdout, stderr) => {
        if (!err) { resolve(stdout); return; }
        const failure = proxy.failure();
        if (opts.signal?.aborted) { reject(opts.signal.reason); return; }
        if (failure instanceof AddressRefusedError) { reject(new GitFetchError(`git ${shown(opts.ref)}: ${failure.message}`)); return; }
        if (failure instanceof GitFetchLimitError) { reject(new GitFetchError(`git ${shown(opts.ref)}: ${failure.message}`)); return; }
        if ((err as { killed?: boolean }).killed) { reject(new GitFetchError(`git ${shown(opts.ref)}: timed out after ${timeoutMs} ms`)); return; }
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') { reject(new GitFetchError('the git binary is not installed on the builder: install git (infra/dev/setup.sh)')); return; }
        const line = stderr.split('\n').map((l) => l.trim()).filter(Boolean).pop() ?? `exit ${String((err as { code?: unknown }).code)}`;
        reject(new GitFetchError(`git ${shown(opts.ref)}: ${line.replace(/^fatal: /, '').slice(0, 300)}`));
      });
    }));
  } finally {
    await proxy.close();
  }
}
