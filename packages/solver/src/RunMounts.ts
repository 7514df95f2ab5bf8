import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm, rmdir, utimes, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import type { LayerRecord } from '@buildyard/cache';
import { DEFAULT_SSH_ID, missingSshAgent } from '@buildyard/contracts';
import type { Mount } from '@buildyard/executor';
import { pathInRoot, pinPathInRoot } from '@buildyard/fileop';
import type { RunHeredocFile, RunMount } from '@buildyard/graph';
import { bindMountDescriptor, removeTree, unmount } from '@buildyard/snapshot';
import type { StageResult } from './StageResult.js';
import { cacheMountDir, recordCacheMountTenant } from './cacheMounts.js';
import { briefMessage } from './briefMessage.js';

const execFileAsync = promisify(execFile);

interface View { path: string; release(): Promise<void> }

export interface RunMountsOptions {
  /** Persistent cache mounts live here. */
  stateDir: string;
  /** This process's scratch directory (secrets, rw copies, pinned mounts): reclaimed if it dies. */
  scratchDir: string;
  tenant: string;
  rootfs: string;
  secrets: Map<string, Buffer>;
  contextDir?: string;
  /** Named contexts: context id -> materialized dir. */
  namedContexts?: Record<string, string>;
  inputs: Record<string, StageResult>;
  viewOf(layers: LayerRecord[]): Promise<View>;
  pullImage(ref: string, digest: string): Promise<LayerRecord[]>;
  /** The client's SSH agents (absent: the client forwards none, as with run-local). */
  ssh?: SshAgentSockets;
}

/**
 * The client's SSH agents as a RUN reaches them: fleet workers relay each connection through
 * the build's frontend, which alone talks to the client (see @buildyard/contracts' SshRelay).
 */
export interface SshAgentSockets {
  /** Why agent `id` (an ssh mount's id, '' for none) cannot be mounted, in BuildKit's words; undefined when it can. */
  missing(id: string): Promise<string | undefined>;
  /** Serves agent `id` on a new unix socket at `path` until `close`. */
  listen(id: string, path: string): Promise<{ close(): Promise<void> }>;
}

// `sharing=locked` cache mounts are serialised per worker process.
const lockedCaches = new Map<string, Promise<void>>();
// `sharing=private` gives a concurrent user its own directory instead of the shared one.
const busyCaches = new Set<string>();

/** Turns RUN --mount specs into executor mounts, and undoes everything afterwards. */
export class RunMounts {
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  constructor(private readonly opts: RunMountsOptions) {}

  async prepare(specs: RunMount[], heredocs: RunHeredocFile[] = []): Promise<{ mounts: Mount[]; env: string[] }> {
    const mounts: Mount[] = [];
    const env: string[] = [];
    for (const heredoc of heredocs) {
      mounts.push({ type: 'bind', source: await this.privateFile(heredoc.content, heredoc.mode, 0, 0), target: heredoc.path, readonly: true });
    }
    for (const spec of specs) {
      switch (spec.type) {
        case 'cache':
          // Shared whatever its sharing: a `shared` step of the same id writes it during a `locked` one.
          mounts.push({ type: 'bind', source: await this.cacheDir(spec), target: spec.target, readonly: spec.readonly, shared: true });
          break;
        case 'secret': {
          const value = this.opts.secrets.get(spec.id);
          if (value === undefined) {
            if (spec.required) throw new Error(`secret ${spec.id}: not found; pass it with --secret id=${spec.id},src=FILE`);
            break;
          }
          if (spec.env) env.push(`${spec.env}=${value.toString('utf8')}`);
          if (spec.target || !spec.env) mounts.push({ type: 'bind', source: await this.privateFile(value, spec.mode, spec.uid, spec.gid), target: spec.target || `/run/secrets/${spec.id}`, readonly: true });
          break;
        }
        case 'bind':
          mounts.push(await this.bindMount(spec));
          break;
        case 'tmpfs':
          mounts.push({ type: 'tmpfs', target: spec.target, sizeBytes: spec.size });
          break;
        case 'ssh': {
          // As buildkitd: an agent the client does not forward leaves an optional socket out and fails a required one.
          const missing = this.opts.ssh ? await this.opts.ssh.missing(spec.id) : missingSshAgent(spec.id, undefined);
          if (missing) {
            if (spec.required) throw new Error(missing);
            break;
          }
          mounts.push({ type: 'bind', source: await this.sshSocket(this.opts.ssh!, spec), target: spec.target, readonly: false });
          break;
        }
      }
    }
    return { mounts, env };
  }

  async release(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) await cleanup();
    this.cleanups.length = 0;
  }

  private async cacheDir(spec: Extract<RunMount, { type: 'cache' }>): Promise<string> {
    const shared = cacheMountDir(this.opts.stateDir, this.opts.tenant, spec.id || spec.target);
    let dir = shared;
    if (spec.sharing === 'locked') {
      while (lockedCaches.has(dir)) await lockedCaches.get(dir);
      let unlock!: () => void;
      lockedCaches.set(dir, new Promise<void>((r) => (unlock = r)));
      this.cleanups.push(() => { lockedCaches.delete(dir); unlock(); });
    } else if (spec.sharing === 'private' && busyCaches.has(dir)) {
      dir = await mkdtemp(join(this.opts.scratchDir, 'cache-private-'));
      const privateDir = dir;
      this.cleanups.push(() => removeTree(privateDir));
    }
    if (!busyCaches.has(dir)) {
      busyCaches.add(dir);
      const busy = dir;
      this.cleanups.push(() => { busyCaches.delete(busy); });
    }
    await mkdir(join(dir, '..'), { recursive: true });
    const created = await mkdir(dir).then(() => true, (err: NodeJS.ErrnoException) => { if (err.code === 'EEXIST') return false; throw err; });
    // Whose it is, for that tenant's prune (a private copy goes with the step anyway).
    if (dir === shared) await recordCacheMountTenant(dir, this.opts.tenant);
    // `from` is the cache's starting content (BuildKit: the base of the cache), copied once.
    if (created && spec.from) await this.copyTree(await this.rootOf(spec.from, 'cache'), spec.source ?? '/', dir, mountLabel('cache', spec.source));
    await chown(dir, spec.uid, spec.gid);
    await chmod(dir, spec.mode);
    // Its time says when it was last used: the worker's GC removes the least recently used first.
    const now = new Date();
    await utimes(dir, now, now);
    if (!spec.source || spec.from) return dir;
    return this.pinnedSubdir(dir, spec.source, mountLabel('cache', spec.source), { mode: spec.mode, owner: { uid: spec.uid, gid: spec.gid } });
  }

  /**
   * A subdirectory of a root that concurrent RUNs may change (a shared cache): the checked inode
   * is opened with O_PATH and bound by descriptor onto a private mount point, which is what runc
   * gets. A symlink swapped in after the check cannot redirect it. (runc cannot take the
   * descriptor path itself: its recursive bind refuses a source from another mount namespace.)
   */
  private async pinnedSubdir(root: string, source: string, label: string, create: { mode: number; owner: { uid: number; gid: number } }): Promise<string> {
    const pinned = await pinPathInRoot(root, source, label, create);
    try {
      const dir = await mkdtemp(join(this.opts.scratchDir, 'pin-'));
      const target = join(dir, 'mount');
      await mkdir(target);
      // Unmounted before anything is removed: a removal through a live mount would empty the cache.
      this.cleanups.push(async () => { await unmount(target); await rmdir(target); await rmdir(dir); });
      await bindMountDescriptor(pinned.path, target);
      return target;
    } finally {
      await pinned.close();
    }
  }

  /**
   * The agent's socket, made as buildkitd makes it: in a private directory (0711, so only the
   * socket's own mode decides who connects), owned and moded as the mount says. It lives
   * outside the rootfs and is bind-mounted onto the target, so no layer ever holds it.
   */
  private async sshSocket(agents: SshAgentSockets, spec: Extract<RunMount, { type: 'ssh' }>): Promise<string> {
    const dir = join(this.opts.scratchDir, 'ssh', randomBytes(12).toString('hex'));
    await mkdir(dir, { recursive: true, mode: 0o711 });
    await chmod(dir, 0o711);
    this.cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'ssh_auth_sock');
    const server = await agents.listen(spec.id || DEFAULT_SSH_ID, path);
    this.cleanups.push(() => server.close());
    await chown(path, spec.uid, spec.gid);
    await chmod(path, spec.mode & 0o777);
    return path;
  }

  /** Secrets and heredoc scripts live in a private directory outside the rootfs, bind-mounted read-only. */
  private async privateFile(value: Buffer | string, mode: number, uid: number, gid: number): Promise<string> {
    const dir = join(this.opts.scratchDir, 'secrets', randomBytes(12).toString('hex'));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    this.cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const file = join(dir, 'secret');
    await writeFile(file, value, { mode });
    await chmod(file, mode);
    await chown(file, uid, gid);
    return file;
  }

  private async bindMount(spec: Extract<RunMount, { type: 'bind' }>): Promise<Mount> {
    const root = await this.rootOf(spec.from, 'bind');
    const label = mountLabel('bind', spec.source);
    // Symlinks resolve inside the stage: its `/` is its own root, never the host's.
    if (!spec.rw) return { type: 'bind', source: (await pathInRoot(root, spec.source || '/', label)).path, target: spec.target, readonly: true };
    // rw binds see writes during the step only: they go to a throwaway copy.
    const scratch = await mkdtemp(join(this.opts.scratchDir, 'bind-rw-'));
    this.cleanups.push(() => removeTree(scratch));
    const copyPath = join(scratch, 'data');
    await this.copyTree(root, spec.source || '/', copyPath, label);
    return { type: 'bind', source: copyPath, target: spec.target, readonly: false };
  }

  /**
   * Copies `source` (resolved inside `root`) to `dest` with everything BuildKit's copy-on-write
   * mount keeps: owners, modes, the times of directories and links too, hard links, xattrs
   * (`cp -a`; Node's fs.cp dates directories "now" and makes everything root's). Links inside
   * the tree are copied as links, to be resolved later inside the container. `root` is a
   * read-only view or the materialised context, so nothing changes it between the check and
   * the copy.
   */
  private async copyTree(root: string, source: string, dest: string, label: string): Promise<void> {
    const resolved = await pathInRoot(root, source, label);
    await execFileAsync('cp', ['-a', '--no-target-directory', '--', resolved.path, dest]).catch((err: Error & { stderr?: string }) => {
      throw new Error(`${label}: copying the source for a read-write mount failed: ${briefMessage(err.stderr?.trim() || err.message, 300)}`);
    });
  }

  private async rootOf(from: Extract<RunMount, { type: 'bind' }>['from'] | undefined, type: 'bind' | 'cache'): Promise<string> {
    if (from?.kind === 'context' && from.contextId) {
      const dir = this.opts.namedContexts?.[from.contextId];
      if (!dir) throw new Error(`RUN --mount=type=${type}: named context ${from.contextId} was not provided to this stage`);
      return dir;
    }
    if (!from || from.kind === 'context') {
      if (!this.opts.contextDir) throw new Error(`RUN --mount=type=${type} needs a build context, and this build has none`);
      return this.opts.contextDir;
    }
    const layers = from.kind === 'stage' ? this.opts.inputs[from.stageId]?.layers : await this.opts.pullImage(from.ref, from.digest);
    if (!layers) throw new Error(`RUN --mount=type=${type},from=${from.kind === 'stage' ? from.stageId : ''}: stage result not provided`);
    const view = await this.opts.viewOf(layers);
    this.cleanups.push(() => view.release());
    return view.path;
  }
}

/** Names the mount in messages, quoting a few hundred characters of its source at most. */
function mountLabel(type: string, source: string | undefined): string {
  return `RUN --mount=type=${type}${source ? `,source=${briefMessage(source, 200)}` : ''}`;
}
