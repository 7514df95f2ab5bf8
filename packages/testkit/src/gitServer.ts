// A real git server for tests (smart HTTP through `git http-backend`, and `git daemon` for
// git://), started on a loopback address or inside a network namespace (a server "outside" the
// cluster, see test/e2e/security/outsideNetwork.ts), with repositories made by the git CLI.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface GitServer {
  /** `http://host:port` */
  http: string;
  /** `git://host:port`, when started with `daemon`. */
  git?: string;
  /** Where the bare repositories live (`<name>.git`). */
  root: string;
  /** Request paths served so far (e.g. `GET /app.git/info/refs`), oldest first. */
  requests: string[];
  /**
   * Makes (or adds commits to) `<name>.git`: each commit writes its files (path -> content; a
   * `{ link }` value makes a symlink), is committed on `branch` (default main) and tagged when
   * `tag` is given; answers each commit's sha.
   */
  commit(name: string, commits: { files: Record<string, string | { link: string }>; branch?: string; tag?: string; message?: string }[]): string[];
  stop(): Promise<void>;
}

const script = fileURLToPath(new URL('./gitHttpServer.mjs', import.meta.url));

function git(cwd: string, args: string[]): string {
  const r = spawnSync('git', args, {
    cwd, encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: cwd, GIT_CONFIG_NOSYSTEM: '1', GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t', GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z', GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z' },
  });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

export async function startGitServer(opts: { host?: string; netns?: string; daemon?: boolean } = {}): Promise<GitServer> {
  const host = opts.host ?? '127.0.0.1';
  const root = mkdtempSync(join(tmpdir(), 'buildyard-git-'));
  const args = [script, root, host, '0', ...(opts.daemon ? ['daemon'] : [])];
  const proc: ChildProcess = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    : spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const requests: string[] = [];
  // SIGTERM: the server's exit handler then stops its git-daemon too.
  const stopNow = () => { proc.kill('SIGTERM'); rmSync(root, { recursive: true, force: true }); };
  process.once('exit', stopNow);
  const ports = await new Promise<[number, number]>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const ready = /^ready (\d+) (\d+)$/.exec(line);
      if (ready) resolve([Number(ready[1]), Number(ready[2])]);
      const req = /^request (\S+) (.*)$/.exec(line);
      if (req) requests.push(`${req[1]} ${req[2]}`);
    });
    proc.once('exit', (code, signal) => reject(new Error(`the git server exited with ${code ?? signal} before it was ready`)));
  });
  const work = (name: string) => join(root, '.work', name);
  return {
    http: `http://${host}:${ports[0]}`,
    ...(opts.daemon ? { git: `git://${host}:${ports[1]}` } : {}),
    root,
    requests,
    commit(name, commits) {
      const dir = work(name);
      const bare = join(root, `${name}.git`);
      const fresh = spawnSync('test', ['-d', dir]).status !== 0;
      if (fresh) {
        mkdirSync(dir, { recursive: true });
        git(dir, ['init', '-q', '-b', 'main']);
        git(root, ['init', '-q', '--bare', '-b', 'main', bare]);
        git(dir, ['remote', 'add', 'origin', bare]);
      }
      const shas: string[] = [];
      for (const c of commits) {
        const branch = c.branch ?? 'main';
        const exists = spawnSync('git', ['-C', dir, 'rev-parse', '-q', '--verify', `refs/heads/${branch}`]).status === 0;
        const hasHead = spawnSync('git', ['-C', dir, 'rev-parse', '-q', '--verify', 'HEAD']).status === 0;
        if (exists) git(dir, ['checkout', '-q', branch]);
        else if (hasHead) git(dir, ['checkout', '-q', '-b', branch]);
        for (const [path, content] of Object.entries(c.files)) {
          const abs = join(dir, path);
          mkdirSync(dirname(abs), { recursive: true });
          rmSync(abs, { force: true });
          if (typeof content === 'string') writeFileSync(abs, content);
          else spawnSync('ln', ['-s', content.link, abs]);
        }
        git(dir, ['add', '-A']);
        git(dir, ['commit', '-q', '--allow-empty', '-m', c.message ?? 'commit']);
        if (c.tag) git(dir, ['tag', '-a', '-m', c.tag, c.tag]);
        git(dir, ['push', '-q', '--force', 'origin', branch, ...(c.tag ? [`refs/tags/${c.tag}`] : [])]);
        shas.push(git(dir, ['rev-parse', 'HEAD']));
      }
      return shas;
    },
    stop: async () => {
      process.off('exit', stopNow);
      const exited = new Promise<void>((resolve) => { if (proc.exitCode !== null || proc.signalCode !== null) resolve(); else proc.once('exit', () => resolve()); });
      proc.kill('SIGTERM');
      await exited;
      rmSync(root, { recursive: true, force: true });
    },
  };
}
