// Builds one case with either builder and reduces the result to a Result. The registry holding
// the busybox base image and the buildkitd daemon are started once per process.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
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

export class Harness {
  private buildkitd?: Buildkitd;
  private cluster?: Promise<Cluster>;
  private readonly bases = new Map<string, Promise<LoadedImage>>();
  /** The web server of ADD <url> cases, in the outside network (started by the first such case). */
  private web?: Promise<{ outside: Outside; server: UrlServer }>;
  /** The base URL of the case being built (one at a time). */
  private url?: string;
  private seq = 0;
  private constructor(readonly registry: RegistryService, readonly base: string, readonly work: string) {}

  static async start(): Promise<Harness> {
    const registry = await startRegistry();
    const seeded = await seedBusybox(registry);
    const work = await mkdtemp(join(tmpdir(), 'buildyard-conformance-'));
    return new Harness(registry, seeded.reference, work);
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

  /** Serves the case's file (builds run one at a time); answers the server's base URL. */
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

  private async prepare(c: Case): Promise<{ dir: string; ctx: string; dockerfile: string; secretsDir: string; url?: string }> {
    const dir = join(this.work, `${++this.seq}-${c.name.replace(/[^\w.-]+/g, '_')}`);
    const ctx = join(dir, 'context');
    const url = await this.serve(c);
    this.url = url;
    const crafted = c.crafted ? `${this.registry.host}/conformance/crafted-${c.name}:1` : undefined;
    if (crafted) await pushCraftedImage(crafted, c.crafted!);
    const dockerfile = await writeContext(c, ctx, this.base, url, crafted);
    const secretsDir = join(dir, 'secrets');
    await mkdir(secretsDir, { recursive: true });
    for (const [id, v] of Object.entries(c.secrets ?? {})) await writeFile(join(secretsDir, id), v);
    return { dir, ctx, dockerfile, secretsDir, url };
  }

  /** The server's address differs per run: results name it as the case does. */
  private untoken(result: Result, url: string | undefined): Result {
    return url ? JSON.parse(JSON.stringify(result).split(url).join(URL_TOKEN)) as Result : result;
  }

  async withBuildkit(c: Case): Promise<Result> {
    return this.untoken(await this.buildkit(c), this.url);
  }

  async withBuildyard(c: Case): Promise<Result> {
    return this.untoken(await this.buildyard(c), this.url);
  }

  async withCluster(c: Case): Promise<Result> {
    return this.untoken(await this.viaCluster(c), this.url);
  }

  private async buildkit(c: Case): Promise<Result> {
    this.buildkitd ??= await Buildkitd.start(this.registry.host);
    const { dir, ctx, dockerfile, secretsDir } = await this.prepare(c);
    const platform = c.platform ?? 'linux/amd64';
    try {
      const out = join(dir, 'oci.tar');
      const r = await this.buildkitd.build({ contextDir: ctx, dockerfile, dockerfileImplicit: c.dockerfileImplicit, out, args: c.args, target: c.target, platform, secrets: c.secrets, secretsDir, outputAttrs: c.outputAttrs });
      if (!r.ok) return { ok: false, error: r.crashed ? 'buildkitd crashed' : normalizeError(buildctlError(r.stderr), this.registry.host) };
      const layout = join(dir, 'oci');
      await mkdir(layout);
      execFileSync('tar', ['-xf', out, '-C', layout]);
      return await summarize(await loadImage(layout, platform), await this.baseImage(platform));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  private async buildyard(c: Case): Promise<Result> {
    const { dir, ctx, dockerfile } = await this.prepare(c);
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
        return { ok: false, error: normalizeError((err as Error).message ?? String(err), this.registry.host) };
      }
      return await summarize(await loadImage(layout, platform), await this.baseImage(platform));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Builds through a real cluster (frontend, Redis, one worker) that shares this harness's
   * registry, pushes the image there and reads it back with skopeo.
   */
  private async viaCluster(c: Case): Promise<Result> {
    this.cluster ??= startCluster({ workers: 1, registry: this.registry });
    const cluster = await this.cluster;
    const { dir, ctx, dockerfile } = await this.prepare(c);
    const platform = c.platform ?? 'linux/amd64';
    const image = `${this.registry.host}/conformance/${c.name}:${this.seq}`;
    try {
      let outcome;
      try {
        outcome = await solve(cluster, ctx, {
          // No name given: the file the CLI would pick (BuildKit's lower-case fallback included).
          dockerfile: await readFile(c.dockerfileImplicit ? defaultDockerfilePath(ctx) : dockerfile), dockerfileName: c.dockerfileName ?? 'Dockerfile',
          platforms: [platform], buildArgs: c.args ?? {}, target: c.target ?? '',
          secrets: Object.entries(c.secrets ?? {}).map(([id, v]) => ({ id, value: Buffer.from(v) })),
          outputs: [{ type: 'image', attrs: { ...c.outputAttrs, name: image, push: 'true' } }],
        });
      } catch (err) {
        // The client's own checks (context walk, .dockerignore) fail before the build starts.
        return { ok: false, error: normalizeError((err as Error).message ?? String(err), this.registry.host) };
      }
      if (outcome.error) return { ok: false, error: normalizeError(outcome.error.message, this.registry.host) };
      const layout = join(dir, 'oci');
      execFileSync('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${image}`, `oci:${layout}:latest`], { stdio: ['ignore', 'ignore', 'pipe'] });
      return await summarize(await loadImage(layout, platform), await this.baseImage(platform));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
