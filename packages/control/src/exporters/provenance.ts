// SLSA provenance v0.2 in BuildKit's layout (solver/llbsolver/provenance, v0.11.6's output as
// the reference): builder, buildType, materials (base images as purls, pinned to what the
// reference resolved to), invocation (frontend, request args, locals, builder platform) and, in
// mode=max, buildConfig (the build's steps) and BuildKit's metadata (Dockerfile source, step
// locations, the layers each step's result is made of). Buildyard has no LLB: buildConfig's
// steps are the plan's stages and vertices written in LLB's op shape, digestMapping maps the
// plan's vertex digests (not LLB digests) to them.
import { parse } from '@buildyard/dockerfile';
import type { PlatformPlan, StagePlan, SourceRef, Vertex, FileAction } from '@buildyard/graph';
import type { StageResult } from '@buildyard/contracts';
import { normalizePlatform, parseReference, DEFAULT_REGISTRY, LAYOUT_REF_PREFIX } from '@buildyard/oci';
import type { SolveRequest } from '@buildyard/proto';

export const SLSA_PROVENANCE_V02 = 'https://slsa.dev/provenance/v0.2';
export const BUILDKIT_BUILD_TYPE = 'https://mobyproject.org/buildkit@v1';
const BUILDKIT_METADATA = 'https://mobyproject.org/buildkit@v1#metadata';

export interface ProvenanceMode {
  mode: 'min' | 'max';
  builderId: string;
}

/** One base-image resolution the planner made: the reference as written, the platform, and what it pinned. */
export interface ImageSourceRecord {
  ref: string;
  platform: string;
  /** What the reference resolved to (the index when it is one), as BuildKit's materials record. */
  topDigest: string;
  /** The platform manifest the build used (stage bases carry it). */
  manifestDigest: string;
  /** How many layers the image has (its config's diff_ids). */
  layerCount: number;
}

/** What every platform's provenance of one build shares. */
export interface ProvenanceBuild {
  buildId: string;
  startedOn: Date;
  finishedOn: Date;
  /** The request's frontend attributes (see frontendAttrsOf); host-specific ones are dropped here. */
  frontendAttrs: Record<string, string>;
  builderPlatform: string;
  dockerfileName: string;
  dockerfile: Uint8Array;
  images: ImageSourceRecord[];
}

/** purl escaping as packageurl-go: Go's QueryEscape (space as %20), which escapes !'()* too. */
const escape = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Formats a platform as containerd's platforms.Format(Normalize(p)) (arm64's v8 dropped). */
export function formatNormalized(platform: string): string {
  const p = normalizePlatform(platform);
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * BuildKit's purl.RefToPURL(TypeDocker, ref, platform): `pkg:docker/NAMESPACE/NAME@TAG?digest=..&platform=..`,
 * the name in Docker's familiar form (docker.io/library/ dropped).
 */
export function imagePurl(ref: string, platform?: string): string {
  // An image from a client's OCI layout is BuildKit's local image source: a pkg:oci purl.
  const layout = ref.startsWith(LAYOUT_REF_PREFIX);
  const r = parseReference(layout ? ref.slice(LAYOUT_REF_PREFIX.length) : ref);
  let name = r.registry === DEFAULT_REGISTRY ? r.repository.replace(/^library\/(?=[^/]+$)/, '') : `${r.registry}/${r.repository}`;
  const parts = name.split('/');
  name = parts.pop()!;
  const ns = parts.map(escape).join('/');
  const tag = r.tag ?? (r.digest ? undefined : 'latest');
  const qualifiers: Array<[string, string]> = [];
  if (r.digest) qualifiers.push(['digest', r.digest]);
  if (platform) qualifiers.push(['platform', formatNormalized(platform)]);
  qualifiers.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `pkg:${layout ? 'oci' : 'docker'}/${ns ? `${ns}/` : ''}${escape(name)}${tag ? `@${escape(tag)}` : ''}${qualifiers.length ? `?${qualifiers.map(([k, v]) => `${k}=${escape(v)}`).join('&')}` : ''}`;
}

/**
 * The frontend attributes a request stands for, as buildctl/buildx send them for the same build
 * (`build-arg:K`, `label:K`, `target`, ...): BuildKit records these as invocation parameters.
 */
export function frontendAttrsOf(req: SolveRequest): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.buildArgs)) out[`build-arg:${k}`] = v;
  for (const [k, v] of Object.entries(req.labels)) out[`label:${k}`] = v;
  for (const [k, v] of Object.entries(req.namedContexts)) out[`context:${k}`] = v;
  if (req.target) out.target = req.target;
  if (req.dockerfileName && req.dockerfileName !== 'Dockerfile') out.filename = req.dockerfileName;
  if (req.noCache) out['no-cache'] = '';
  else if (req.noCacheFilter.length) out['no-cache'] = req.noCacheFilter.join(',');
  if (req.addHosts.length) out['add-hosts'] = req.addHosts.join(',');
  if (req.network && req.network !== 'default') out['force-network-mode'] = req.network;
  return out;
}

/** BuildKit's provenance.FilterArgs: host-specific attributes and attest:* are not parameters. */
export function filterArgs(attrs: Record<string, string>): Record<string, string> {
  const hostSpecific = new Set(['cgroup-parent', 'image-resolve-mode', 'platform', 'cache-imports']);
  return Object.fromEntries(Object.entries(attrs).filter(([k]) => !hostSpecific.has(k) && !k.startsWith('attest:')).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The image records one platform's stages use (bases, COPY --from=image, mounts), in plan order. */
function imagesOf(plan: PlatformPlan, records: readonly ImageSourceRecord[]): ImageSourceRecord[] {
  const used: ImageSourceRecord[] = [];
  // A platform manifest digest names one resolution (the planner resolves each reference once per platform).
  const add = (digest: string) => {
    const rec = records.find((r) => r.manifestDigest === digest);
    if (rec && !used.includes(rec)) used.push(rec);
  };
  const addSource = (s: SourceRef | undefined) => { if (s?.kind === 'image') add(s.digest); };
  for (const stage of plan.stages) {
    if (stage.base.kind === 'image') add(stage.base.digest);
    for (const v of stage.vertices) {
      v.inputs.forEach(addSource);
      if (v.kind === 'file') for (const a of v.actions) if (a.op === 'copy') addSource(a.from);
      if (v.kind === 'exec') for (const m of v.mounts) if ('from' in m) addSource(m.from);
    }
  }
  return used;
}

const readsContext = (v: Vertex): boolean => v.kind === 'file'
  ? v.actions.some((a) => a.op === 'copy' && a.from.kind === 'context')
  : v.mounts.some((m) => 'from' in m && m.from?.kind === 'context');

function platformOf(platform: string): Record<string, string> {
  const p = normalizePlatform(platform);
  return { Architecture: p.architecture, OS: p.os, ...(p.variant ? { Variant: p.variant } : {}) };
}

interface Step { id: string; op: unknown; inputs?: string[] }

/** The build's steps in LLB's JSON shape, and where each step's result's layers are. */
class StepWriter {
  readonly steps: Step[] = [];
  readonly digestMapping: Record<string, string> = {};
  readonly locations: Record<string, unknown> = {};
  readonly layers: Record<string, unknown[][]> = {};
  private readonly stageOut = new Map<string, string>();
  private readonly imageSteps = new Map<string, string>();
  private contextStep?: string;

  /** fromLines: each stage's FROM line by stage index (where BuildKit locates an image source step). */
  constructor(private readonly plan: PlatformPlan, private readonly images: ImageSourceRecord[], private readonly results: (stageId: string) => StageResult | undefined, private readonly fromLines: readonly number[] = []) {}

  private add(op: unknown, inputs: string[], digest?: string, line?: number): string {
    const id = `step${this.steps.length}`;
    this.steps.push({ id, op, ...(inputs.length ? { inputs } : {}) });
    if (digest) this.digestMapping[digest] = id;
    this.locations[id] = line ? { locations: [{ ranges: [{ start: { line }, end: { line } }] }] } : {};
    return id;
  }

  private image(ref: string, digest: string, line?: number): string {
    const key = `${ref} ${digest}`;
    let id = this.imageSteps.get(key);
    if (!id) {
      const rec = this.images.find((r) => r.manifestDigest === digest);
      const pinned = rec ? `${rec.ref.replace(/@sha256:[a-f0-9]{64}$/, '')}@${rec.topDigest}` : ref;
      const identifier = pinned.startsWith(LAYOUT_REF_PREFIX) ? pinned : `docker-image://${pinned}`;
      id = this.add({ Op: { source: { identifier } }, platform: platformOf(this.plan.platform), constraints: {} }, [], undefined, line);
      this.imageSteps.set(key, id);
    }
    return id;
  }

  private context(): string {
    this.contextStep ??= this.add({ Op: { source: { identifier: 'local://context', attrs: { 'local.sharedkeyhint': 'context' } } }, constraints: {} }, []);
    return this.contextStep;
  }

  private source(s: SourceRef): string | undefined {
    if (s.kind === 'context') return this.context();
    if (s.kind === 'image') return this.image(s.ref, s.digest);
    return this.stageOut.get(s.stageId);
  }

  stage(stage: StagePlan): void {
    let current: string | undefined;
    let baseLayers = 0;
    if (stage.base.kind === 'image') {
      current = this.image(stage.base.ref, stage.base.digest, this.fromLines[stage.index]);
      baseLayers = this.images.find((r) => r.manifestDigest === (stage.base as { digest: string }).digest)?.layerCount ?? 0;
    } else if (stage.base.kind === 'stage') {
      current = this.stageOut.get(stage.base.stageId);
      baseLayers = this.results(stage.base.stageId)?.layers.length ?? 0;
    }
    const result = this.results(stage.id);
    const chain = (n: number) => result!.layers.slice(0, n).map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
    if (current && result && baseLayers > 0 && stage.base.kind === 'image' && !this.layers[`${current}:0`]) this.layers[`${current}:0`] = [chain(baseLayers)];
    // Each vertex adds at most one layer; when every one did, each step's chain is known, else only the stage's.
    const perVertex = result !== undefined && result.layers.length - baseLayers === stage.vertices.length;
    stage.vertices.forEach((v, i) => {
      const inputs = [current, ...this.extraInputs(v)].filter((x): x is string => x !== undefined);
      current = this.add(this.op(v, inputs.length), inputs.map((id) => `${id}:0`), v.digest, v.line);
      if (result && (perVertex || i === stage.vertices.length - 1)) this.layers[`${current}:0`] = [chain(perVertex ? baseLayers + i + 1 : result.layers.length)];
    });
    if (current) this.stageOut.set(stage.id, current);
  }

  private extraInputs(v: Vertex): Array<string | undefined> {
    if (v.kind === 'exec') return v.mounts.flatMap((m) => ('from' in m && m.from ? [this.source(m.from)] : []));
    return v.actions.flatMap((a) => (a.op === 'copy' ? [this.source(a.from)] : []));
  }

  private op(v: Vertex, inputs: number): unknown {
    const platform = platformOf(this.plan.platform);
    if (v.kind === 'exec') {
      const mounts: unknown[] = [{ input: 0, dest: '/', output: 0 }];
      let input = 1;
      for (const m of v.mounts) {
        const from = 'from' in m && m.from ? input++ : -1;
        mounts.push({ input: from, dest: m.target, output: -1, ...(m.type !== 'bind' ? { mountType: m.type.toUpperCase() } : {}) });
      }
      const meta = { args: v.args, env: v.env, cwd: v.cwd, ...(v.user ? { user: v.user } : {}), ...(v.network !== 'default' ? { network: v.network.toUpperCase() } : {}) };
      return { Op: { exec: { meta, mounts } }, platform, constraints: {} };
    }
    let secondary = inputs > 1 ? 1 : -1;
    const actions = v.actions.map((a: FileAction) => {
      const copyFrom = a.op === 'copy' ? secondary++ : -1;
      return { input: 0, secondaryInput: copyFrom, output: 0, Action: fileAction(a) };
    });
    return { Op: { file: { actions } }, platform, constraints: {} };
  }

  finish(): void {
    const target = this.stageOut.get(this.plan.target);
    this.add({ Op: null }, target ? [`${target}:0`] : []);
    delete this.locations[this.steps[this.steps.length - 1].id];
  }
}

function fileAction(a: FileAction): unknown {
  switch (a.op) {
    case 'copy': return { copy: { src: a.sources.join(' '), dest: a.dest, ...(a.chown ? { owner: a.chown } : {}), ...(a.chmod ? { mode: a.chmod } : {}), followSymlink: a.followSymlinks, allowWildcard: true, ...(a.exclude.length ? { excludePatterns: a.exclude } : {}) } };
    case 'addUrl': return { copy: { src: a.url, dest: a.dest } };
    case 'addGit': return { copy: { src: `${a.url}${a.ref ? `#${a.ref}` : ''}`, dest: a.dest } };
    case 'mkdir': return { mkdir: { path: a.path, mode: a.mode, makeParents: true } };
    case 'mkfile': return { mkfile: { path: a.path, mode: a.mode } };
  }
}

/** The locals a platform's build reads: `dockerfile` always, `context` when a step reads it. */
function localsOf(plan: PlatformPlan): Array<{ name: string }> {
  const context = plan.stages.some((s) => s.vertices.some(readsContext));
  return [...(context ? [{ name: 'context' }] : []), { name: 'dockerfile' }];
}

/** The SLSA v0.2 predicate of one platform's result, as BuildKit writes it. */
export function provenancePredicate(build: ProvenanceBuild, plan: PlatformPlan, results: (stageId: string) => StageResult | undefined, mode: ProvenanceMode): Record<string, unknown> {
  const images = imagesOf(plan, build.images);
  const materials = images.map((r) => ({ uri: imagePurl(r.ref, r.platform), digest: { sha256: r.topDigest.replace(/^sha256:/, '') } }));
  const max = mode.mode === 'max';
  const args = filterArgs(build.frontendAttrs);
  const parameters = { frontend: 'dockerfile.v0', ...(max && Object.keys(args).length ? { args } : {}), locals: localsOf(plan) };
  let buildConfig: unknown;
  let buildkitMetadata: Record<string, unknown> = {};
  if (max) {
    let fromLines: number[] = [];
    try { fromLines = parse(Buffer.from(build.dockerfile).toString('utf8'), { file: build.dockerfileName }).stages.map((s) => s.from.startLine); } catch { /* it was planned, so it parses; without lines the steps have no locations */ }
    const steps = new StepWriter(plan, images, results, fromLines);
    for (const stage of plan.stages) steps.stage(stage);
    steps.finish();
    buildConfig = { llbDefinition: steps.steps, digestMapping: steps.digestMapping };
    const info = {
      filename: build.dockerfileName,
      data: Buffer.from(build.dockerfile).toString('base64'),
      llbDefinition: [
        { id: 'step0', op: { Op: { source: { identifier: 'local://dockerfile', attrs: { 'local.differ': 'none', 'local.sharedkeyhint': 'dockerfile' } } }, constraints: {} } },
        { id: 'step1', op: { Op: null }, inputs: ['step0:0'] },
      ],
    };
    buildkitMetadata = { source: { locations: steps.locations, infos: [info] }, layers: steps.layers };
  }
  return {
    builder: { id: mode.builderId },
    buildType: BUILDKIT_BUILD_TYPE,
    materials,
    invocation: {
      configSource: {},
      parameters,
      environment: { platform: formatNormalized(build.builderPlatform) },
    },
    ...(buildConfig ? { buildConfig } : {}),
    metadata: {
      buildInvocationID: build.buildId,
      buildStartedOn: build.startedOn.toISOString(),
      buildFinishedOn: build.finishedOn.toISOString(),
      completeness: { parameters: max, environment: true, materials: false },
      reproducible: false,
      [BUILDKIT_METADATA]: buildkitMetadata,
    },
  };
}
