// Reads a pushed image index with its attestation manifests through the repo's registry client,
// and reduces a provenance statement to what Buildyard and BuildKit must agree on.
import { RegistryClient, isAttestationDescriptor, parseReference, type Descriptor, type ImageIndex, type ImageManifest } from '@buildyard/oci';

export interface Statement {
  _type: string;
  predicateType: string;
  subject: Array<{ name: string; digest: { sha256: string } }>;
  predicate: Record<string, any>;
}

export interface AttestedImage {
  index: ImageIndex;
  images: Descriptor[];
  attestations: Array<{ descriptor: Descriptor; manifest: ImageManifest; config: Record<string, unknown>; statements: Statement[] }>;
}

export async function readAttestedImage(ref: string): Promise<AttestedImage> {
  const r = parseReference(ref);
  const client = new RegistryClient({ dockerConfig: false, insecureHosts: [r.registry] });
  const repo = { registry: r.registry, repository: r.repository };
  const top = await client.getManifest(ref);
  const index = top.manifest as ImageIndex;
  if (!Array.isArray(index.manifests)) throw new Error(`${ref} is a single manifest (${top.mediaType}), not an index`);
  const attestations: AttestedImage['attestations'] = [];
  for (const d of index.manifests.filter(isAttestationDescriptor)) {
    const manifest = (await client.getManifest({ ...repo, digest: d.digest })).manifest as ImageManifest;
    const config = JSON.parse((await client.fetchBlobBytes(repo, manifest.config.digest)).toString('utf8'));
    const statements: Statement[] = [];
    for (const l of manifest.layers) statements.push(JSON.parse((await client.fetchBlobBytes(repo, l.digest)).toString('utf8')));
    attestations.push({ descriptor: d, manifest, config, statements });
  }
  return { index, images: index.manifests.filter((d) => !isAttestationDescriptor(d)), attestations };
}

/**
 * The parts of a v0.2 provenance predicate both builders must produce alike: everything but
 * times, ids, LLB op bodies and digests (Buildyard has no LLB; its steps are its plan's) and
 * the layer blobs' own digests (compression differs), keeping the shape of each.
 */
export function comparableProvenance(p: Record<string, any>): Record<string, unknown> {
  const bk = p.metadata?.['https://mobyproject.org/buildkit@v1#metadata'] ?? {};
  const opKind = (op: any) => (op?.Op === null ? 'result' : Object.keys(op?.Op ?? {})[0]);
  return {
    keys: Object.keys(p),
    builder: p.builder,
    buildType: p.buildType,
    materials: p.materials,
    invocation: p.invocation,
    metadataKeys: Object.keys(p.metadata ?? {}),
    completeness: p.metadata?.completeness,
    reproducible: p.metadata?.reproducible,
    buildkitMetadataKeys: Object.keys(bk),
    steps: p.buildConfig?.llbDefinition?.map((s: any) => ({ id: s.id, kind: opKind(s.op), inputs: s.inputs, source: s.op?.Op?.source?.identifier, args: s.op?.Op?.exec?.meta?.args })),
    locations: bk.source ? Object.fromEntries(Object.entries(bk.source.locations).map(([k, v]: [string, any]) => [k, v.locations?.[0]?.ranges?.[0]?.start?.line ?? null])) : undefined,
    sources: bk.source?.infos?.map((i: any) => ({ filename: i.filename, data: i.data })),
    layers: bk.layers ? Object.fromEntries(Object.entries(bk.layers).map(([k, chains]: [string, any]) => [k, (chains as any[]).at(-1).map((l: any) => l.mediaType)])) : undefined,
    baseLayer: bk.layers?.['step0:0']?.[0]?.[0]?.digest,
  };
}
