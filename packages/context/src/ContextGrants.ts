// What a tenant has proven it holds: the context ids it synced and the contents it uploaded.
// A digest alone is never proof (anyone may know one); these grants are. On one machine they
// are empty files under the context store's root (every process there sees the same
// directory); across machines they live in Redis, so any frontend or worker can check them.
import { access, link, mkdir, open, readdir, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { linkEach } from './fileThread.js';

export interface ContextGrants {
  /** Records that `tenant` synced `contextId` (and may build from it). */
  grantContext(tenant: string, contextId: string): Promise<void>;
  hasContext(tenant: string, contextId: string): Promise<boolean>;
  /** Records that `tenant` uploaded (or re-proved) these contents. */
  grantContent(tenant: string, digests: Iterable<string>): Promise<void>;
  /** Per digest, whether `tenant` has a grant for it (the store may still lack the bytes). */
  hasContent(tenant: string, digests: readonly string[]): Promise<boolean[]>;
  /**
   * Of `digests`, those a deleter of the shared store (the context GC, a cache prune; see
   * ContextBlobGuard in @buildyard/cache) is deleting now (`deleting`) or deleted within the
   * last hour (`deleted`). A writer that found them in the shared store asks this after granting
   * them: either the deleter (which announces before it reads the grants) saw the grant and
   * kept the blob, or the writer sees the deletion and puts the blob back once it is done.
   * Absent where nothing is shared (one machine).
   */
  recentDeletions?(digests: readonly string[]): Promise<{ deleting: string[]; deleted: string[] }>;
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Digests in one fan-out directory from which hasContent lists it instead of asking each. */
const READDIR_FROM = 8;

const dirOf = (path: string) => path.slice(0, path.lastIndexOf('/'));

/** Grants as empty files under `<root>/tenants/<tenant>/` (one machine, as before Redis). */
export class FsContextGrants implements ContextGrants {
  /** Fan-out directories this instance made or found. */
  private readonly madeDirs = new Set<string>();
  /** Per tenant, a content grant file this instance made, which its next grants link to. */
  private readonly linkSources = new Map<string, string>();

  constructor(private readonly root: string) {}

  async grantContext(tenant: string, contextId: string): Promise<void> {
    const dir = join(this.root, 'tenants', tenantDirName(tenant));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, contextId.slice('sha256:'.length)), '');
  }

  async hasContext(tenant: string, contextId: string): Promise<boolean> {
    if (!DIGEST.test(contextId)) return false;
    return exists(join(this.root, 'tenants', tenantDirName(tenant), contextId.slice('sha256:'.length)));
  }

  async grantContent(tenant: string, digests: Iterable<string>): Promise<void> {
    const paths = [...new Set([...digests].map((d) => this.contentGrant(tenant, d)))];
    if (paths.length === 0) return;
    // Each fan-out directory once (those this instance made before are not made again: a sync
    // grants its uploads batch by batch, and 256 mkdirs per batch would cost more than the grants).
    const dirs = [...new Set(paths.map(dirOf))].filter((d) => !this.madeDirs.has(d));
    await Promise.all(dirs.map(async (d) => { await mkdir(d, { recursive: true }); this.madeDirs.add(d); }));
    // The first grant of a tenant this instance has no link source for is made alone: it
    // becomes the source the others link to (else each would make a file).
    let rest = paths;
    if (!this.linkSources.has(tenant)) {
      await this.grantOne(tenant, paths[0]!, dirOf(paths[0]!));
      rest = paths.slice(1);
    }
    // The links as one batch on the file thread; what a link cannot make goes the long way.
    const source = this.linkSources.get(tenant);
    const errors = source === undefined ? undefined : await linkEach(rest.map((p) => [source, p]));
    const failed = errors ? rest.filter((_, i) => errors[i] !== '' && errors[i] !== 'EEXIST') : rest;
    for (let i = 0; i < failed.length; i += 64) await Promise.all(failed.slice(i, i + 64).map((p) => this.grantOne(tenant, p, dirOf(p))));
  }

  /**
   * One content grant: a hard link to another grant file of this tenant (an empty file, so the
   * grant is still just a name that exists). Making a new inode cost ~160 us of kernel time
   * per file on this ext4 and a link ~8 us, and a first sync grants every file it uploads.
   */
  private async grantOne(tenant: string, path: string, dir: string): Promise<void> {
    const source = this.linkSources.get(tenant);
    if (source !== undefined) {
      try {
        await link(source, path);
        return;
      } catch (err) {
        // Granted already. Else the source or this directory was dropped (ENOENT), the source
        // has its filesystem's most links (EMLINK), or links do not work here: a file of its own.
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
      }
    }
    // No fsync: a grant lost in a crash only means the tenant uploads the file once more.
    const fh = await open(path, 'a').catch(async (err: NodeJS.ErrnoException) => {
      // Removed since (a tenant's grants dropped): made again.
      if (err.code !== 'ENOENT') throw err;
      this.madeDirs.delete(dir);
      await mkdir(dir, { recursive: true });
      return open(path, 'a');
    });
    await fh.close();
    if (this.linkSources.get(tenant) === source) this.linkSources.set(tenant, path);
  }

  async hasContent(tenant: string, digests: readonly string[]): Promise<boolean[]> {
    // Grouped by fan-out directory: where a group is large, one readdir answers all of it (a
    // first sync of 20,000 files asks 20,000 digests: 256 readdirs instead of 20,000 access
    // calls, each a round trip through libuv's thread pool); small groups are asked one by one.
    const groups = new Map<string, number[]>();
    digests.forEach((d, i) => {
      if (!DIGEST.test(d)) return;
      const path = this.contentGrant(tenant, d);
      const dir = path.slice(0, path.lastIndexOf('/'));
      const g = groups.get(dir);
      if (g) g.push(i);
      else groups.set(dir, [i]);
    });
    const out = digests.map(() => false);
    const ask = async ([dir, at]: [string, number[]]) => {
      if (at.length < READDIR_FROM) {
        await Promise.all(at.map(async (i) => { out[i] = await exists(this.contentGrant(tenant, digests[i]!)); }));
        return;
      }
      const names = new Set(await readdir(dir).catch(() => [] as string[]));
      for (const i of at) out[i] = names.has(digests[i]!.slice('sha256:'.length));
    };
    const all = [...groups];
    for (let i = 0; i < all.length; i += 16) await Promise.all(all.slice(i, i + 16).map(ask));
    return out;
  }

  private contentGrant(tenant: string, digest: string): string {
    const hex = digest.slice('sha256:'.length);
    return join(this.root, 'tenants', tenantDirName(tenant), 'content', hex.slice(0, 2), hex);
  }

  /** Every context grant on disk: its tenant's directory, the context id, when last granted (ms). */
  async contextGrants(): Promise<{ dir: string; contextId: string; ms: number }[]> {
    const out: { dir: string; contextId: string; ms: number }[] = [];
    const tenants = join(this.root, 'tenants');
    for (const dir of await readdir(tenants).catch(() => [] as string[])) {
      for (const name of await readdir(join(tenants, dir)).catch(() => [] as string[])) {
        if (!/^[a-f0-9]{64}$/.test(name)) continue;
        const s = await stat(join(tenants, dir, name)).catch(() => undefined);
        if (s?.isFile()) out.push({ dir, contextId: `sha256:${name}`, ms: s.mtimeMs });
      }
    }
    return out;
  }

  /** Removes a context grant last written at or before `cutoff` (ms); one renewed since stays. */
  async dropContextGrant(dir: string, contextId: string, cutoff: number): Promise<boolean> {
    const path = join(this.root, 'tenants', dir, contextId.slice('sha256:'.length));
    const s = await stat(path).catch(() => undefined);
    if (!s || s.mtimeMs > cutoff) return false;
    return unlink(path).then(() => true, () => false);
  }

  /** Removes every tenant's content grant of these digests (their contents are gone). */
  async dropContentGrants(digests: readonly string[]): Promise<void> {
    const tenants = join(this.root, 'tenants');
    for (const dir of await readdir(tenants).catch(() => [] as string[])) {
      await Promise.all(digests.map((d) => {
        const hex = d.slice('sha256:'.length);
        return unlink(join(tenants, dir, 'content', hex.slice(0, 2), hex)).catch(() => undefined);
      }));
    }
  }
}

export interface RedisContextGrantsOptions {
  /** The deployment's key prefix (`redis.keyPrefix`). */
  prefix: string;
  /**
   * A grant not renewed for this long is dropped (the tenant then sends that file or the whole
   * context once more). Every sync renews the grants of everything its context holds.
   * Default 30 days.
   */
  retentionMs?: number;
}

/** Keys of the context grants: one sorted set per tenant and kind, member -> last proof (ms). */
export function contextGrantKeys(prefix: string) {
  return {
    contexts: (tenant: string) => `${prefix}:contexts:grants:${tenant}:ids`,
    content: (tenant: string) => `${prefix}:contexts:grants:${tenant}:content`,
    /** What SCAN matches to find every tenant's grant sets (the prefix glob-escaped). */
    scanPattern: `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:contexts:grants:*`,
    /** A grant set's key -> its tenant and kind; undefined for another key. */
    parse: (key: string): { tenant: string; kind: 'ids' | 'content' } | undefined => {
      const head = `${prefix}:contexts:grants:`;
      if (!key.startsWith(head)) return undefined;
      const m = /:(ids|content)$/.exec(key);
      if (!m || key.length - m[0].length <= head.length) return undefined;
      return { tenant: key.slice(head.length, key.length - m[0].length), kind: m[1] as 'ids' | 'content' };
    },
    /** Every tenant that ever held a grant (a set; never shrinks: tenants are few). */
    tenants: `${prefix}:contexts:tenants`,
    /** Set once `tenants` lists every tenant with grant sets (grants made before it existed included). */
    tenantsComplete: `${prefix}:contexts:tenants:complete`,
    /** Sorted set digest -> how many deleters are deleting it now (see recentDeletions). */
    deleting: `${prefix}:contexts:deleting`,
    /** Sorted set digest -> when a deleter last deleted it (ms), kept for RECENT_DELETION_MS. */
    deleted: `${prefix}:contexts:deleted`,
    /** The context GC's lock: one collector at a time across frontends. */
    gcLock: `${prefix}:contexts:gc:lock`,
  };
}

/** Grants in Redis, for processes on machines that share no directory. */
export class RedisContextGrants implements ContextGrants {
  private readonly keys: ReturnType<typeof contextGrantKeys>;
  private readonly retentionMs: number;

  constructor(private readonly redis: Redis | Cluster, opts: RedisContextGrantsOptions) {
    this.keys = contextGrantKeys(opts.prefix);
    this.retentionMs = opts.retentionMs ?? 30 * 24 * 3600_000;
  }

  grantContext(tenant: string, contextId: string): Promise<void> {
    return this.grant(tenant, this.keys.contexts(tenant), [contextId]);
  }

  async hasContext(tenant: string, contextId: string): Promise<boolean> {
    if (!DIGEST.test(contextId)) return false;
    const score = await this.redis.zscore(this.keys.contexts(tenant), contextId);
    return score !== null && Number(score) > Date.now() - this.retentionMs;
  }

  grantContent(tenant: string, digests: Iterable<string>): Promise<void> {
    return this.grant(tenant, this.keys.content(tenant), [...new Set(digests)]);
  }

  async hasContent(tenant: string, digests: readonly string[]): Promise<boolean[]> {
    const out = digests.map(() => false);
    const wanted = digests.map((d, i) => ({ d, i })).filter(({ d }) => DIGEST.test(d));
    const oldest = Date.now() - this.retentionMs;
    for (let i = 0; i < wanted.length; i += GRANT_BATCH) {
      const slice = wanted.slice(i, i + GRANT_BATCH);
      const scores = await this.redis.zmscore(this.keys.content(tenant), ...slice.map((w) => w.d));
      slice.forEach((w, j) => { out[w.i] = scores[j] !== null && Number(scores[j]) > oldest; });
    }
    return out;
  }

  async recentDeletions(digests: readonly string[]): Promise<{ deleting: string[]; deleted: string[] }> {
    const out = { deleting: [] as string[], deleted: [] as string[] };
    // Nearly always nothing was deleted lately: one EXISTS per set, the per-digest look only then.
    const sets = [['deleting', this.keys.deleting], ['deleted', this.keys.deleted]] as const;
    for (const [kind, key] of sets) {
      if (digests.length === 0 || !(await this.redis.exists(key))) continue;
      for (let i = 0; i < digests.length; i += GRANT_BATCH) {
        const slice = digests.slice(i, i + GRANT_BATCH);
        const scores = await this.redis.zmscore(key, ...slice);
        slice.forEach((d, j) => { if (scores[j] !== null && Number(scores[j]) > 0) out[kind].push(d); });
      }
    }
    return out;
  }

  /** Adds or renews members, drops those past the retention, and lets an idle tenant's set expire. */
  private async grant(tenant: string, key: string, members: readonly string[]): Promise<void> {
    if (members.length === 0) return;
    // The tenant is listed before its grant exists: a deleter reading the list after it announced
    // a deletion (see recentDeletions) then never misses this tenant's grant.
    await this.redis.sadd(this.keys.tenants, tenant);
    const now = Date.now();
    for (let i = 0; i < members.length; i += GRANT_BATCH) {
      const slice = members.slice(i, i + GRANT_BATCH);
      // One key per MULTI: it runs on any Redis Cluster node that holds that key.
      const tx = this.redis.multi();
      tx.zadd(key, ...slice.flatMap((m) => [now, m]));
      tx.zremrangebyscore(key, '-inf', now - this.retentionMs);
      tx.pexpire(key, this.retentionMs);
      await tx.exec();
    }
  }
}

const GRANT_BATCH = 1000;

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

// Tenant names become directory names: keep them readable but never path-like.
function tenantDirName(tenant: string): string {
  const safe = tenant.replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '' || safe === '.' || safe === '..' ? `_${Buffer.from(tenant).toString('hex')}` : safe;
}
