// Builds one case with either builder and reduces the result to a Result. The registry holding
// the busybox base image and the buildkitd daemon are started once per process.
//
// Cluster builds (withCluster) may run `lanes` at a time. Each lane is a tenant of its own and
// builds its cases one at a time, in the order they were asked for: no two cases of different
// lanes share a cache record or an in-flight stage (the scheduler joins identical stages of one
// tenant's concurrent builds), so every lane is a sequential run of some of the cases, as
// `--only` makes one. Cases are dealt to the lanes in turn, the same way every run; `served`
// cases all go to the first lane: one web server serves one file at every path, and ADD <url>'s
// cache must see them in the suite's order. Every case has its own directory and image name.
// buildkitd's and buildLocal's builds run one at a time.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { readPushedImage } from './registryImage.js';
import { busyboxLayout, pushCraftedImage, seedBusybox, startCluster, startRegistry, type Cluster, type RegistryService } from '@buildyard/testkit';
import { solve } from '../../e2e/grpcClient.js';
import { defaultDockerfilePath } from '@buildyard/dockerfile';
import { buildLocal } from '@buildyard/localbuild';
import { Buildkitd, buildctlError } from './buildkit.js';
import { URL_TOKEN, writeContext } from './context.js';
import { startOutside, type Outside } from '../../e2e/security/outsideNetwork.js';
import { UrlServer } from '../../e2e/urlServerControl.js';
import { normalizeError } from './normalize.js';
import { loadImage, summarize, type LoadedImage } from './summarize.js';
import type { Case, Result } from './types.js';

/**
 * How many cases the suite builds at once through the one cluster (its lanes);
 * BUILDYARD_CONFORMANCE_JOBS overrides it, 1 builds them one at a time as one tenant.
 */
export const CLUSTER_JOBS = Math.max(1, Math.floor(Number(process.env.BUILDYARD_CONFORMANCE_JOBS)) || 3);

/** The tenant of each lane: the cluster's default tenant first. */
function laneTenant(lane: number): string {
  return lane === 0 ? 'default' : `lane-${lane + 1}`;
}

export class Harness {
  private buildkitd?: Buildkitd;
  private cluster?: Promise<Cluster>;
  private readonly bases = new Map<string, Promise<LoadedImage>>();
  /** The web server of ADD <url> cases, in the outside network (started by the first such case). */
  private web?: Promise<{ outside: Outside; server: UrlServer }>;
  private seq = 0;
  /** Cases dealt to the lanes in turn so far (`served` ones go to the first lane out of turn). */
  private dealt = 0;
  /** Per key, the end of the last piece of work queued for it (see exclusive). */
  private readonly queues = new Map<string, Promise<unknown>>();
  private constructor(readonly registry: RegistryService, readonly base: string, readonly work: string, readonly lanes: number) {}

  /** `lanes`: how many cluster builds may run at once (default 1). */
  static async start(options: { lanes?: number } = {}): Promise<Harness> {
    const registry = await startRegistry();
    const seeded = await seedBusybox(registry);
    const work = await mkdtemp(join(tmpdir(), 'buildyard-conformance-'));
    return new Harness(registry, seeded.reference, work, Math.max(1, options.lanes ?? 1));
  }

  async stop(): Promise<void> {
    if (this.web) {
      const { outside, server } = await this.web;
      server.stop();
      await outside.stop();
    }
    await this.buildkitd?.stop();
    if (this.cluster) await (await this.cluster).stop();
    await this.registry.stop();
    await rm(this.work, { recursive: true, force: true }).catch(() => undefined);
  }

  private baseImage(platform: string): Promise<LoadedImage> {
    let p = this.bases.get(platform);
    if (!p) {
      p = busyboxLayout().then((dir) => loadImage(dir, platform));
      this.bases.set(platform, p);
    }
    return p;
  }

  /** Runs `work` after every earlier one of the same `key` has ended (in the order asked). */
  private exclusive<T>(key: string, work: () => Promise<T>): Promise<T> {
    const run = (this.queues.get(key) ?? Promise.resolve()).then(work, work);
    const done = run.then(() => undefined, () => undefined);
    this.queues.set(key, done);
    void done.then(() => { if (this.queues.get(key) === done) this.queues.delete(key); });
    return run;
  }

  /**
   * Builds `c` while it is the only case using what cases share: the one web server (it serves one
   * file at every path) and the crafted image's name (the same name in two groups).
   */
  private alone<T>(c: Case, work: () => Promise<T>): Promise<T> {
    const crafted = c.crafted ? () => this.exclusive(`crafted ${c.name}`, work) : work;
    return c.served ? this.exclusive('web server', crafted) : crafted();
  }

  /** Serves the case's file (the caller holds the server: see alone); answers the server's base URL. */
  private async serve(c: Case): Promise<string | undefined> {
    if (!c.served) return undefined;
    this.web ??= (async () => {
      const outside = await startOutside();
      return { outside, server: await UrlServer.start(outside) };
    })();
    const { server } = await this.web;
    await server.serve(c.served);
    return server.base;
  }

  private async prepare(c: Case): Promise<{ dir: string; ctx: string; dockerfile: string; secretsDir: string; url?: string; seq: number }> {
    const seq = ++this.seq;
    const dir = join(this.work, `${seq}-${c.name.replace(/[^\w.-]+/g, '_')}`);
    const ctx = join(dir, 'context');
    const url = await this.serve(c);
    const crafted = c.crafted ? `${this.registry.host}/conformance/crafted-${c.name}:1` : undefined;
    if (crafted) await pushCraftedImage(crafted, c.crafted!);
    const dockerfile = await writeContext(c, ctx, this.base, url, crafted);
    const secretsDir = join(dir, 'secrets');
    await mkdir(secretsDir, { recursive: true });
    for (const [id, v] of Object.entries(c.secrets ?? {})) await writeFile(join(secretsDir, id), v);
    return { dir, ctx, dockerfile, secretsDir, url, seq };
  }

  /** The server's address differs per run: results name it as the case does. */
  private untoken(result: Result, url: string | undefined): Result {
    return url ? JSON.parse(JSON.stringify(result).split(url).join(URL_TOKEN)) as Result : result;
  }

  /** One at a time: the prune before each build clears the context copy buildctl's builds share. */
  withBuildkit(c: Case): Promise<Result> {
    return this.exclusive('buildkitd', () => this.alone(c, () => this.buildkit(c)));
  }

  /** One at a time (one state directory). */
  withBuildyard(c: Case): Promise<Result> {
    return this.exclusive('buildLocal', () => this.alone(c, () => this.buildyard(c)));
  }

  /** Queued on its lane (see the top of this file), beside the other lanes' builds. */
  withCluster(c: Case): Promise<Result> {
    const lane = c.served || this.lanes === 1 ? 0 : this.dealt++ % this.lanes;
    return this.exclusive(`lane ${lane}`, () => this.alone(c, () => this.viaCluster(c, laneTenant(lane))));
  }

  private async buildkit(c: Case): Promise<Result> {
    this.buildkitd ??= await Buildkitd.start(this.registry.host);
    const { dir, ctx, dockerfile, secretsDir, url } = await this.prepare(c);
    const platform = c.platform ?? 'linux/amd64';
    try {
      const out = join(dir, 'oci.tar');
      const r = await this.buildkitd.build({ contextDir: ctx, dockerfile, dockerfileImplicit: c.dockerfileImplicit, out, args: c.args, target: c.target, platform, secrets: c.secrets, secretsDir, outputAttrs: c.outputAttrs });
      if (!r.ok) return this.untoken({ ok: false, error: r.crashed ? 'buildkitd crashed' : normalizeError(buildctlError(r.stderr), this.registry.host) }, url);
      const layout = join(dir, 'oci');
      await mkdir(layout);
      execFileSync('tar', ['-xf', out, '-C', layout]);
      return this.untoken(await summarize(await loadImage(layout, platform), await this.baseImage(platform)), url);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async buildyard(c: Case): Promise<Result> {
    const { dir, ctx, dockerfile, url } = await this.prepare(c);
    const platform = c.platform ?? 'linux/amd64';
    try {
      const layout = join(dir, 'oci');
      try {
        await buildLocal({
          contextDir: ctx, dockerfile: c.dockerfileImplicit ? undefined : dockerfile, platforms: [platform], buildArgs: c.args, target: c.target,
          secrets: new Map(Object.entries(c.secrets ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
          stateDir: join(this.work, 'buildyard-state'), ociLayoutDir: layout, insecureRegistries: [this.registry.host],
        });
      } catch (err) {
        return this.untoken({ ok: false, error: normalizeError((err as Error).message ?? String(err), this.registry.host) }, url);
      }
      return this.untoken(await summarize(await loadImage(layout, platform), await this.baseImage(platform)), url);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Builds through a real cluster (frontend, Redis, one worker) that shares this harness's
   * registry, pushes the image there and reads it back (registryImage.ts).
   */
  private async viaCluster(c: Case, tenant: string): Promise<Result> {
    this.cluster ??= startCluster({ workers: 1, registry: this.registry, tenants: Array.from({ length: this.lanes - 1 }, (_, i) => laneTenant(i + 1)) });
    const cluster = await this.cluster;
    const token = cluster.tokens[tenant]!;
    const { dir, ctx, dockerfile, url, seq } = await this.prepare(c);
    const platform = c.platform ?? 'linux/amd64';
    // Its own name: cases build at the same time, and two groups may hold the same case name.
    const repository = `conformance/${c.name}`;
    const image = `${this.registry.host}/${repository}:${seq}`;
    try {
      let outcome;
      try {
        outcome = await solve({ address: cluster.address, token }, ctx, {
          // No name given: the file the CLI would pick (BuildKit's lower-case fallback included).
          dockerfile: await readFile(c.dockerfileImplicit ? defaultDockerfilePath(ctx) : dockerfile), dockerfileName: c.dockerfileName ?? 'Dockerfile',
          platforms: [platform], buildArgs: c.args ?? {}, target: c.target ?? '',
          secrets: Object.entries(c.secrets ?? {}).map(([id, v]) => ({ id, value: Buffer.from(v) })),
          outputs: [{ type: 'image', attrs: { ...c.outputAttrs, name: image, push: 'true' } }],
        });
      } catch (err) {
        // The client's own checks (context walk, .dockerignore) fail before the build starts.
        return this.untoken({ ok: false, error: normalizeError((err as Error).message ?? String(err), this.registry.host) }, url);
      }
      if (outcome.error) return this.untoken({ ok: false, error: normalizeError(outcome.error.message, this.registry.host) }, url);
      const layout = join(dir, 'oci');
      const base = await this.baseImage(platform);
      await readPushedImage(this.registry.host, repository, String(seq), layout, new Map(base.layers.map((l) => [l.digest, resolve(base.dir, 'blobs', l.digest.replace(':', '/'))])));
      return this.untoken(await summarize(await loadImage(layout, platform), base), url);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
