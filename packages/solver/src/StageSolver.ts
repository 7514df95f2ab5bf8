import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { BlobStore, CacheIndex, LayerRecord } from '@buildyard/cache';
import { canonicalDigest, imageStateKey, type ExecVertex, type FileVertex, type ImageConfigFile, type SourceRef, type StagePlan, type Vertex } from '@buildyard/graph';
import { type EgressLists, type Executor, type StepLimits } from '@buildyard/executor';
import { ownedSnapshotName, snapshotChainNames, copyXattrs, diffUpper, ownScratchDir, setXattrs, type ChainLayer, type Snapshotter } from '@buildyard/snapshot';
import { addUrl, copy, DirUrlValidatorStore, mkdir, mkfile, resolveChown, resolveChownOnScratch, revalidateUrl, type UrlRevision, type UrlValidatorStore } from '@buildyard/fileop';
import type { StageResult } from './StageResult.js';
import { StageAssembly, answeredInputsOf, isUsableHit, stageBase, stageBaseKey, type SolvedVertex } from './StageAssembly.js';
import { RunMounts, type SshAgentSockets } from './RunMounts.js';
import { briefMessage } from './briefMessage.js';

/** Where a stage's base image and `COPY --from=<image>` images come from. */
export interface ImageSource {
  /** Makes the image's layer blobs available in the blob store; returns its chain and config. */
  pull(ref: string, digest: string, platform: string, signal?: AbortSignal): Promise<{ layers: LayerRecord[]; config: ImageConfigFile }>;
}

export interface VertexProgress {
  digest: string;
  name: string;
  state: 'started' | 'cached' | 'completed' | 'error';
  durationMs?: number;
  error?: string;
}

export interface SolverEvents {
  vertex(status: VertexProgress): void;
  log(digest: string, stream: 1 | 2, data: Buffer): void;
}

export interface StageSolverOptions {
  stateDir: string;
  /** Interfaces, as BuildKit's solver: overlayfs and runc are the worker's choice (openExecutionEngine). */
  snapshotter: Snapshotter;
  executor: Executor;
  blobs: BlobStore;
  cache: CacheIndex;
  images: ImageSource;
  compression: 'gzip' | 'zstd';
  sourceDateEpoch?: number;
  stepTimeoutMs?: number;
  /** Connect and idle timeouts of ADD <url> downloads (fileop's defaults when absent). */
  download?: { connectTimeoutMs: number; idleTimeoutMs: number };
  /** ETags of earlier ADD <url> downloads (default: files under the state dir, as BuildKit
   *  keeps them per daemon; another worker's first check is a download). */
  urlValidators?: UrlValidatorStore;
}

export interface SolveStageRequest {
  stage: StagePlan;
  /** Results of the stages this one depends on, by stage id. */
  inputs: Record<string, StageResult>;
  /** The build context, materialized with .dockerignore applied; absent for builds without one. */
  contextDir?: string;
  /** Named contexts the stage reads (SourceRef.contextId), materialized: context id -> dir. */
  namedContexts?: Record<string, string>;
  secrets?: Map<string, Buffer>;
  /** The client's SSH agents for RUN --mount=type=ssh (none when absent). */
  ssh?: SshAgentSockets;
  noCache?: boolean;
  events?: SolverEvents;
  signal?: AbortSignal;
  /** Distinguishes cache mounts of different tenants. */
  tenant?: string;
  /** The build's --network, used by RUN steps that do not set their own. */
  network?: 'default' | 'none' | 'host';
  /** The tenant's egress lists, added to the worker's for network=default steps. */
  egress?: EgressLists;
  /** The tenant's RUN limits, replacing the worker's per limit. */
  limits?: StepLimits;
}

/** Under the state dir: one scratch directory per worker process (see openExecutionEngine). */
export const SCRATCH_DIR = 'scratch';

const noEvents: SolverEvents = { vertex: () => {}, log: () => {} };

/** What an ADD <url> without --checksum read: the key of its step depends on it. */
interface RemoteContent { digest: string; lastModified: string | null }

/**
 * Runs one stage for one platform: each vertex is looked up in the cache index first; missing
 * ones run over an overlay snapshot of the current layer chain and their diff becomes a layer,
 * stored in the shared blob store and recorded in the cache index.
 */
export class StageSolver {
  private readonly validators: UrlValidatorStore;

  constructor(private readonly opts: StageSolverOptions) {
    this.validators = opts.urlValidators ?? new DirUrlValidatorStore(join(opts.stateDir, 'url-validators'));
  }

  async solve(request: SolveStageRequest): Promise<StageResult> {
    // Inputs the frontend answered from the cache come with the plan, the others from the scheduler.
    const req = { ...request, inputs: { ...answeredInputsOf(request.stage), ...request.inputs } };
    const { stage } = req;
    const events = req.events ?? noEvents;
    const base = await stageBase(stage, req.inputs, async (ref, digest) => {
      const image = await this.opts.images.pull(ref, digest, stage.platform, req.signal);
      return { layers: image.layers, history: image.config.history ?? [] };
    });
    // The key of the state so far: the plan's, unless a download without --checksum (here or
    // in a stage this one uses) made it provisional; then the one derived from what it read.
    const assembly = new StageAssembly(stage, base, stageBaseKey(stage, req.inputs), Boolean(req.noCache));
    for (const vertex of stage.vertices) {
      assembly.add(await this.solveVertex(vertex, stage, assembly.layers, req, events, assembly.stateKey));
    }
    return assembly.result();
  }

  /**
   * The key a vertex is cached under. The plan's key covers the definition, the context files
   * and every input known when planning; a provisional one (see Vertex.provisionalKey) also
   * needs what is only known now: the real key of the state it runs on, the real keys of the
   * stages it reads, and what its downloads served (digest and Last-Modified, as BuildKit's
   * HTTP source key: the time becomes the file's mtime).
   */
  private effectiveKey(vertex: Vertex, parentKey: string, req: SolveStageRequest, remote: RemoteContent[]): string {
    if (!vertex.provisionalKey) return vertex.cacheKey;
    const inputs = vertex.inputs.map((i) => (i.kind === 'stage' ? req.inputs[i.stageId]?.cacheKey ?? '' : i.kind === 'image' ? imageStateKey(i.digest) : 'context'));
    return canonicalDigest({ provisional: vertex.cacheKey, parent: parentKey, inputs, remote });
  }

  /** The vertex's ADD <url> actions without --checksum, each asked what the URL serves now. */
  private async revalidate(vertex: Vertex, req: SolveStageRequest): Promise<Map<number, UrlRevision>> {
    const revisions = new Map<number, UrlRevision>();
    if (vertex.kind !== 'file') return revisions;
    try {
      for (const [i, action] of vertex.actions.entries()) {
        if (action.op !== 'addUrl' || action.checksum) continue;
        revisions.set(i, await revalidateUrl({
          url: action.url, store: this.validators, scope: req.tenant ?? 'default', signal: req.signal, tmpDir: await this.scratchDir(),
          ...this.opts.download, line: vertex.line, refuseAddress: this.refuseAddress(req), maxBytes: (await this.extractLimits()).maxBytes,
        }));
      }
    } catch (err) {
      await releaseAll(revisions);
      throw err;
    }
    return revisions;
  }

  private async solveVertex(vertex: Vertex, stage: StagePlan, layers: LayerRecord[], req: SolveStageRequest, events: SolverEvents, parentKey: string): Promise<SolvedVertex> {
    const started = Date.now();
    let revisions = new Map<number, UrlRevision>();
    try {
      if (!req.noCache) {
        // As BuildKit: the URL is asked again on every build, before the cache is consulted.
        revisions = await this.revalidate(vertex, req);
        const key = this.effectiveKey(vertex, parentKey, req, [...revisions.values()].map(remoteOf));
        const hit = await this.opts.cache.get(key);
        if (isUsableHit(hit) && (await this.opts.blobs.has(hit.layer.digest))) {
          events.vertex({ digest: vertex.digest, name: vertex.name, state: 'cached' });
          return { key, cached: true, layer: hit.layer, record: hit };
        }
        // A record without a layer comes from solvers that dropped empty diffs; replace it, since
        // the first writer of a key wins and it would keep the step's layer out of the image.
        if (hit && hit.layer === null) await this.opts.cache.delete([key]);
      }
      events.vertex({ digest: vertex.digest, name: vertex.name, state: 'started' });
      const ran = await this.runVertex(vertex, stage, layers, req, events, revisions);
      // Keyed by what the step really read: a file that changed since the check gets its own key.
      const key = this.effectiveKey(vertex, parentKey, req, ran.remote);
      // First writer wins in the index, so concurrent builds converge on one layer; a forced
      // re-run (--no-cache) still uses what it just built.
      const stored = await this.opts.cache.put({ key, layer: ran.layer, description: vertex.name, platform: stage.platform });
      events.vertex({ digest: vertex.digest, name: vertex.name, state: 'completed', durationMs: Date.now() - started });
      return { key, cached: false, layer: req.noCache ? ran.layer : stored.layer, record: stored };
    } catch (err) {
      // Errors quote the step (a RUN's whole command line): cut here, before progress, Redis and
      // the client see them. The error object stays, so callers can still tell its kind.
      if (err instanceof Error) err.message = briefMessage(err.message);
      events.vertex({ digest: vertex.digest, name: vertex.name, state: 'error', durationMs: Date.now() - started, error: (err as Error).message });
      throw err;
    } finally {
      await releaseAll(revisions);
    }
  }

  private async runVertex(vertex: Vertex, stage: StagePlan, layers: LayerRecord[], req: SolveStageRequest, events: SolverEvents, revisions: Map<number, UrlRevision>): Promise<{ layer: LayerRecord | null; remote: RemoteContent[] }> {
    // A linked copy runs on an empty tree, so its diff is the whole copy (see isLinked).
    const linked = isLinked(vertex);
    const parent = linked ? undefined : await this.chainOf(layers, req.tenant ?? 'default');
    const key = `active-${randomBytes(8).toString('hex')}`;
    const active = await this.opts.snapshotter.prepare(key, parent);
    let layer: LayerRecord | null = null;
    let remote: RemoteContent[] = [];
    try {
      if (vertex.kind === 'exec') await this.runExec(vertex, stage, active.mountpoint, req, events);
      // A stage with no layer yet is llb.Scratch() in BuildKit (an image has an input even without
      // layers): like a linked copy, it has nothing to look a user name up in.
      else remote = await this.runFileOps(vertex, active.mountpoint, req, revisions, linked || (layers.length === 0 && stage.base.kind !== 'image'));
      // Every RUN, COPY, ADD and WORKDIR step is a layer, an empty one when it changed nothing:
      // BuildKit commits a snapshot per exec and file op and exports each as a layer. Nothing
      // writes through the mount any more, so its upper dir is read while it is unmounted
      // (an `umount` process, 6-13 ms a step here).
      const [diffed, unmounted] = await Promise.allSettled([
        this.storeDiff(active.upperdir!, linked ? [] : layers, req.tenant ?? 'default', stage.sourceDateEpoch ?? this.opts.sourceDateEpoch),
        active.release(),
      ]);
      if (diffed.status === 'rejected') throw diffed.reason;
      if (unmounted.status === 'rejected') throw unmounted.reason;
      layer = diffed.value;
    } finally {
      await active.release();
      // Keeping the result as a committed snapshot saves the next step from unpacking it again.
      // A linked copy's snapshot has no parent, so it cannot stand for the stage's chain: the
      // next step unpacks its layer onto the chain (ensureChain), as for a cached step.
      if (layer && !linked) {
        // The tenant's own: the upper dir can hold what the layer does not (see ownedSnapshotName).
        // Recorded as its owner's, so that tenant's prune (and no other's) removes it.
        const owner = req.tenant ?? 'default';
        const name = ownedSnapshotName(owner, snapshotChainNames([...layers, layer]).at(-1)!);
        await this.opts.snapshotter.commit(name, key, { owner }).catch(async (err: Error) => {
          await this.opts.snapshotter.remove(key);
          // Another step committed the same chain meanwhile: its snapshot serves as well as ours.
          if (!(await this.opts.snapshotter.stat(name))) throw new Error(`keeping the result of ${vertex.name.slice(0, 120)} as snapshot ${name.slice(0, 80)} failed: ${err.message}`);
        });
      } else {
        await this.opts.snapshotter.remove(key);
      }
    }
    return { layer, remote };
  }

  /** Temporary files of this process, reclaimed by the next worker if this one is killed. */
  private scratchDir(): Promise<string> {
    return ownScratchDir(join(this.opts.stateDir, SCRATCH_DIR));
  }

  private async storeDiff(upperdir: string, parent: LayerRecord[], tenant: string, sourceDateEpoch: number | undefined): Promise<LayerRecord> {
    const blobDir = await mkdtemp(join(await this.scratchDir(), 'layer-'));
    // The diff is BuildKit's overlay differ's (unchanged copy-ups left out, a directory removed
    // and made again written as a whiteout per entry gone), which compares with the parent
    // filesystem: mounted once the diff starts, as BuildKit mounts it.
    let lower: { path: string; release(): Promise<void> } | undefined;
    try {
      const blob = await diffUpper(upperdir, {
        compression: this.opts.compression, sourceDateEpoch, blobPath: join(blobDir, 'blob'),
        lower: async () => (lower ??= await this.viewOf(parent, tenant)).path,
      });
      await this.opts.blobs.put(createReadStream(blob.blobPath), blob.digest, blob.size);
      return { digest: blob.digest, diffID: blob.diffID, size: blob.size, mediaType: blob.mediaType };
    } finally {
      await lower?.release();
      await rm(blobDir, { recursive: true, force: true });
    }
  }

  /** Makes sure the chain of `layers` exists as committed snapshots `tenant` may use; returns its name. */
  private async chainOf(layers: LayerRecord[], tenant: string): Promise<string | undefined> {
    if (layers.length === 0) return undefined;
    const snapshotLayers: ChainLayer[] = layers.map((l) => ({ diffID: l.diffID, digest: l.digest, mediaType: l.mediaType, open: () => this.opts.blobs.openRead(l.digest) }));
    return this.opts.snapshotter.ensureChain(snapshotLayers, { owner: tenant });
  }

  private async runExec(vertex: ExecVertex, stage: StagePlan, rootfs: string, req: SolveStageRequest, events: SolverEvents): Promise<void> {
    const mounts = new RunMounts({
      stateDir: this.opts.stateDir,
      scratchDir: await this.scratchDir(),
      tenant: req.tenant ?? 'default',
      rootfs,
      secrets: req.secrets ?? new Map(),
      ssh: req.ssh,
      contextDir: req.contextDir,
      namedContexts: req.namedContexts,
      viewOf: (layers) => this.viewOf(layers, req.tenant ?? 'default'),
      inputs: req.inputs,
      pullImage: (ref, digest) => this.opts.images.pull(ref, digest, stage.platform, req.signal).then((i) => i.layers),
    });
    try {
      const { mounts: runMounts, env } = await mounts.prepare(vertex.mounts, vertex.heredocs ?? []);
      await this.opts.executor.run({
        rootfs,
        meta: {
          args: vertex.args,
          env: [...vertex.env, ...env],
          cwd: vertex.cwd || '/',
          user: vertex.user,
          // The frontend checks the network.host and security.insecure entitlements.
          network: vertex.network === 'default' ? (req.network ?? 'default') : vertex.network,
          security: vertex.security,
          ...(vertex.hostname ? { hostname: vertex.hostname } : {}),
          ...(vertex.extraHosts ? { extraHosts: vertex.extraHosts } : {}),
          ...(vertex.ulimits ? { ulimits: vertex.ulimits } : {}),
          egress: req.egress,
          tenant: req.tenant ?? 'default',
          limits: req.limits,
          platform: stage.platform,
          timeoutMs: this.opts.stepTimeoutMs,
        },
        mounts: runMounts,
        stdout: logSink(vertex.digest, 1, events),
        stderr: logSink(vertex.digest, 2, events),
        signal: req.signal,
      });
    } finally {
      await mounts.release();
    }
  }

  /** A read-only view of a layer chain, for COPY --from and bind mounts. */
  private async viewOf(layers: LayerRecord[], tenant: string): Promise<{ path: string; release(): Promise<void> }> {
    const parent = await this.chainOf(layers, tenant);
    if (!parent) {
      const empty = await mkdtemp(join(await this.scratchDir(), 'empty-'));
      return { path: empty, release: () => rm(empty, { recursive: true, force: true }) };
    }
    const key = `view-${randomBytes(8).toString('hex')}`;
    const view = await this.opts.snapshotter.view(key, parent);
    // Unmounted and removed: a view left behind holds its parent, which the GC then cannot free.
    return { path: view.mountpoint, release: async () => { await view.release(); await this.opts.snapshotter.remove(key); } };
  }

  private async sourceRoot(from: SourceRef, stage: StagePlan, req: SolveStageRequest): Promise<{ path: string; release(): Promise<void> }> {
    if (from.kind === 'context') {
      const dir = from.contextId ? req.namedContexts?.[from.contextId] : req.contextDir;
      if (!dir) throw new Error(from.contextId ? `named context ${from.contextId} was not provided to this stage` : 'this build has no context: COPY from the context needs a build context');
      return { path: dir, release: async () => {} };
    }
    if (from.kind === 'stage') {
      const input = req.inputs[from.stageId];
      if (!input) throw new Error(`COPY --from needs stage ${from.stageId}, which was not provided`);
      return this.viewOf(input.layers, req.tenant ?? 'default');
    }
    const image = await this.opts.images.pull(from.ref, from.digest, stage.platform, req.signal);
    return this.viewOf(image.layers, req.tenant ?? 'default');
  }

  private async extractLimits(): Promise<{ maxBytes: number }> {
    return { maxBytes: await freeSpaceLimit(this.opts.stateDir) };
  }

  /** The worker fetches outside any step's firewall, so it asks the same egress rules (with the
   *  tenant's lists) for every address it would connect to. */
  private refuseAddress(req: SolveStageRequest): ((address: string) => string | undefined) | undefined {
    return this.opts.executor.egressRules?.forTenant(req.egress).refuse;
  }

  /** Runs a file vertex's actions; answers what its downloads without --checksum read. */
  private async runFileOps(vertex: FileVertex, rootfs: string, req: SolveStageRequest, revisions: Map<number, UrlRevision>, onScratch: boolean): Promise<RemoteContent[]> {
    const { stage } = req;
    const remote: RemoteContent[] = [];
    for (const [i, action] of vertex.actions.entries()) {
      const chown = 'chown' in action && action.chown ? action.chown : undefined;
      const owner = chown === undefined ? undefined : onScratch ? resolveChownOnScratch(chown) : await ownerOf(rootfs, chown);
      switch (action.op) {
        case 'copy': {
          const src = await this.sourceRoot(action.from, stage, req);
          try {
            await copy({
              srcRoot: src.path, sources: action.sources, destRoot: rootfs, dest: action.dest,
              owner: owner ?? (action.from.kind === 'context' ? undefined : 'preserve'),
              chmod: action.chmod, parents: action.parents, exclude: action.exclude,
              followSymlinks: action.followSymlinks, autoExtract: action.isAdd && action.from.kind === 'context' ? true : action.unpack,
              extractLimits: await this.extractLimits(), copyXattrs, setXattrs,
            });
          } finally {
            await src.release();
          }
          break;
        }
        case 'addGit':
          throw new Error(`ADD ${action.url}: git sources are not supported yet; clone in a RUN step instead`);
        case 'addUrl': {
          // The build's signal ends the download at once; its file lives in this process's scratch.
          // A body the revalidation already downloaded is placed as it is.
          // One look at the free space bounds both the download and what it unpacks to.
          const spaceLimits = await this.extractLimits();
          const placed = await addUrl({
            url: action.url, destRoot: rootfs, dest: action.dest, checksum: action.checksum, owner, chmod: action.chmod, unpack: action.unpack,
            signal: req.signal, tmpDir: await this.scratchDir(), ...this.opts.download, line: vertex.line,
            refuseAddress: this.refuseAddress(req), fetched: revisions.get(i)?.fetched, setXattrs,
            maxBytes: spaceLimits.maxBytes, extractLimits: spaceLimits,
          });
          if (!action.checksum) remote.push(remoteOf(placed));
          break;
        }
        case 'mkdir':
          await mkdir({ root: rootfs, path: action.path, owner, mode: action.mode, createdTime: action.createdTime });
          break;
        case 'mkfile':
          await mkfile({ root: rootfs, path: action.path, content: action.content, mode: action.mode, owner, ...(action.name !== undefined ? { name: action.name } : {}) });
          break;
        default:
          throw new Error(`unsupported file operation ${(action as { op: string }).op}`);
      }
    }
    return remote;
  }
}

/**
 * COPY/ADD --link, as BuildKit's dispatchCopy: unless --chmod is given, the copy is made on
 * llb.Scratch() and merged onto the stage (llb.Merge), whose export adds the copy's own diff as
 * the layer. Its layer then holds the copied entries and the parents the copy made, fresh
 * (0755, root or --chown), whatever the stage has at those paths.
 */
function isLinked(vertex: Vertex): boolean {
  if (vertex.kind !== 'file') return false;
  const flagged = vertex.actions.filter((a) => a.op === 'copy' || a.op === 'addUrl' || a.op === 'addGit');
  return (flagged.some((a) => a.link) && !flagged.some((a) => a.chmod)) || vertex.actions.some((a) => a.op === 'mkfile' && a.link);
}

function remoteOf(got: { digest: string; lastModified: Date | null }): RemoteContent {
  return { digest: got.digest, lastModified: got.lastModified ? got.lastModified.toISOString() : null };
}

async function releaseAll(revisions: Map<number, UrlRevision>): Promise<void> {
  for (const r of revisions.values()) await r.release();
}

/** Archives may unpack to at most 90% of the state dir's free space, so a tar bomb fails early. */
async function freeSpaceLimit(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return Math.floor(stats.bavail * stats.bsize * 0.9);
}

/** --chown and the USER of a WORKDIR resolve as BuildKit's file ops do (an unknown name is 0). */
function ownerOf(rootfs: string, chown: string): Promise<{ uid: number; gid: number }> {
  return resolveChown(rootfs, chown);
}

function logSink(digest: string, stream: 1 | 2, events: SolverEvents): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      events.log(digest, stream, chunk);
      done();
    },
  });
}
