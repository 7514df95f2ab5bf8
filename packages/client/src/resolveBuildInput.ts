// Where the build's context and Dockerfile come from: a directory, an http(s) tarball, a git
// URL (fetched by the server), or `-`
// (Dockerfile on stdin, no context); and which .dockerignore applies (Docker's rule:
// `<Dockerfile>.dockerignore` beside the Dockerfile wins over `<context>/.dockerignore`).
import { constants } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { defaultDockerfilePath, parseDockerignore, parseGitRef } from '@buildyard/dockerfile';
import { ClientError, ExitCode, usageError } from './ClientError.js';
import { makeRealDir, NotADirectoryError } from './realDir.js';

export interface BuildInput {
  /** Context directory, or undefined for no context (`-`). */
  contextDir?: string;
  /** A git URL the server fetches as the context (BuildKit's git context); no contextDir then. */
  contextUrl?: string;
  dockerfile: Buffer;
  /** Path as the user knows it, for error excerpts (e.g. `Dockerfile`, `docker/app.Dockerfile`). */
  dockerfileName: string;
  dockerignore: Buffer;
  dockerignorePatterns: string[];
  /** Removes a downloaded context. */
  cleanup(): Promise<void>;
}

export interface ResolveInputOptions {
  /** PATH | URL | - */
  context: string;
  /** -f value: a path, or `-` for stdin. */
  file?: string;
  cwd: string;
  stdin?: NodeJS.ReadableStream;
  /** Download limit for URL contexts. */
  timeoutMs?: number;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts);
}

/** Extracts a (optionally gzipped) tarball from `url` into a new temp dir. */
export async function downloadContext(url: string, timeoutMs = 120_000): Promise<string> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (err) {
    throw new ClientError(`cannot download the build context ${url}: ${(err as Error).message}; check the URL and your network`, ExitCode.BuildFailed);
  }
  if (!res.ok || !res.body) throw new ClientError(`cannot download the build context ${url}: HTTP ${res.status}; check the URL`, ExitCode.BuildFailed);
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-context-'));
  try {
    const body = Buffer.from(await res.arrayBuffer());
    const gz = body[0] === 0x1f && body[1] === 0x8b;
    // Loaded here: only URL contexts need it, and it is a tenth of the code a build loads.
    const { default: tar } = await import('tar-stream');
    const extract = tar.extract();
    const root = resolve(dir);
    // The first refusal ends extraction: later entries are skipped, the error thrown at the end
    // (an error passed to next() would also reach the skipped entry stream, which has no handler).
    let refused: ClientError | undefined;
    /**
     * Readies `target` for its entry: each directory on the way lstat'ed in turn (realDir.ts), so
     * an entry below a link the archive made is refused however its name is spelt; a link or file
     * already at the target is removed, never written through. False once refused.
     */
    const place = async (name: string, target: string): Promise<boolean> => {
      try {
        await makeRealDir(root, dirname(relative(root, target)), false);
      } catch (err) {
        if (!(err instanceof NotADirectoryError)) throw err;
        refused ??= new ClientError(`the context tarball ${url} holds "${name}" below its ${err.isLink ? 'symlink' : 'file'} "${relative(root, err.path)}"; refusing it`);
        return false;
      }
      const st = await lstat(target).catch(() => null);
      if (st && !st.isDirectory()) await rm(target, { force: true });
      return true;
    };
    extract.on('entry', (header, stream, next) => {
      const target = resolve(root, header.name);
      if (!refused && target !== root && !target.startsWith(root + sep)) {
        refused = new ClientError(`the context tarball ${url} holds "${header.name}", which points outside the context; refusing it`);
      }
      const done = (err?: unknown) => (err ? next(err as Error) : next());
      const kind = header.type;
      if (refused || (kind !== 'directory' && kind !== 'symlink' && kind !== 'file')) {
        stream.resume();
        next();
        return;
      }
      if (kind !== 'file') stream.resume();
      place(header.name, target).then(async (placed) => {
        if (!placed) {
          stream.resume();
        } else if (kind === 'directory') {
          await mkdir(target, { recursive: true, mode: (header.mode ?? 0o755) | 0o700 });
        } else if (kind === 'symlink') {
          await symlink(header.linkname ?? '', target);
        } else {
          const file = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, header.mode ?? 0o644);
          await pipeline(stream, file.createWriteStream());
        }
      }).then(() => done(), done);
    });
    const src = Readable.from([body]);
    await (gz ? pipeline(src, createGunzip(), extract) : pipeline(src, extract));
    if (refused) throw refused;
    return dir;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    if (err instanceof ClientError) throw err;
    throw new ClientError(`cannot extract the build context ${url}: ${(err as Error).message}; it must be a tar or tar.gz archive`);
  }
}

async function readIgnore(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function resolveBuildInput(o: ResolveInputOptions): Promise<BuildInput> {
  const stdin = o.stdin ?? process.stdin;
  let contextDir: string | undefined;
  let cleanup = async () => {};
  let dockerfile: Buffer;
  let dockerfileName = 'Dockerfile';
  let dockerfilePath: string | undefined;

  if (o.context === '-') {
    if (o.file === '-') throw usageError('the context is "-" (Dockerfile on stdin), so -f - cannot also read stdin; drop -f');
    dockerfile = await readAll(stdin);
  } else {
    let git: ReturnType<typeof parseGitRef>;
    try { git = parseGitRef(o.context); } catch (err) { throw usageError(`${(err as Error).message}; a git context is https://host/repo.git#ref:dir`); }
    if (git) {
      // The server fetches the repository (under the build's network policy) and reads the
      // Dockerfile from it; -f names a path inside the repository's directory, or - for stdin.
      const dockerfile = o.file === '-' ? await readAll(stdin) : Buffer.alloc(0);
      const name = o.file && o.file !== '-' ? o.file.replace(/^\.\//, '') : 'Dockerfile';
      return { contextUrl: o.context, dockerfile, dockerfileName: name, dockerignore: Buffer.alloc(0), dockerignorePatterns: [], cleanup: async () => {} };
    }
    if (/^[a-z]+:\/\//i.test(o.context) || o.context.startsWith('git@')) {
      if (!/^https?:\/\//i.test(o.context)) throw usageError(`unsupported context URL ${o.context}; use a directory, an http(s) tarball URL, or -`);
      contextDir = await downloadContext(o.context, o.timeoutMs);
      const dir = contextDir;
      cleanup = () => rm(dir, { recursive: true, force: true });
    } else {
      contextDir = resolve(o.cwd, o.context);
      const st = await stat(contextDir).catch(() => undefined);
      if (!st) throw usageError(`build context ${o.context} does not exist; pass a directory, a URL or -`);
      if (!st.isDirectory()) throw usageError(`build context ${o.context} is not a directory; pass a directory (use -f for the Dockerfile)`);
    }
    try {
      if (o.file === '-') {
        dockerfile = await readAll(stdin);
      } else {
        // -f is relative to the cwd for local contexts and inside the context for URLs (as docker).
        dockerfilePath = o.file ? resolve(contextDir !== resolve(o.cwd, o.context) ? contextDir : o.cwd, o.file) : defaultDockerfilePath(contextDir);
        try {
          dockerfile = await readFile(dockerfilePath);
        } catch (err) {
          throw usageError(`cannot read Dockerfile ${relative(o.cwd, dockerfilePath) || dockerfilePath} (${(err as NodeJS.ErrnoException).code ?? String(err)}); pass its path with -f`);
        }
        const rel = relative(o.cwd, dockerfilePath);
        dockerfileName = o.file && !rel.startsWith('..') ? rel : basename(dockerfilePath);
      }
    } catch (err) {
      await cleanup();
      throw err;
    }
  }
  let dockerignore: Buffer = Buffer.alloc(0);
  if (contextDir) {
    dockerignore = (dockerfilePath ? await readIgnore(`${dockerfilePath}.dockerignore`) : undefined)
      ?? (await readIgnore(join(contextDir, '.dockerignore')))
      ?? Buffer.alloc(0);
  }
  let patterns: string[];
  try {
    patterns = parseDockerignore(dockerignore.toString('utf8'));
  } catch (err) {
    await cleanup();
    throw usageError(`.dockerignore: ${(err as Error).message}`);
  }
  return { contextDir, dockerfile, dockerfileName, dockerignore, dockerignorePatterns: patterns, cleanup };
}
