import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, planBuild } from '@buildyard/dockerfile';
import type { StageResult } from '@buildyard/contracts';
import type { BuildPlan, ImageConfigFile } from '@buildyard/graph';
import { sha256Digest } from '@buildyard/oci';
import { assembleImage, assembleIndex } from '@buildyard/solver';
import { attestationFiles, attestationImage, attestSpec, parseAttests, type PlatformAttestation } from './attestations.js';
import { imageSubjects, wantsAttestations } from './buildAttestations.js';
import { filterArgs, frontendAttrsOf, imagePurl, provenancePredicate, type ProvenanceBuild } from './provenance.js';
import { SolveRequest } from '@buildyard/proto';

const d = (s: string) => sha256Digest(Buffer.from(s));
const INDEX = d('index');
const MANIFEST = d('amd64 manifest');

test('attest specs: BuildKit defaults (provenance mode=max), buildx\'s type=... value, disabled dropped; bad values refused in one line', () => {
  assert.deepEqual(parseAttests([attestSpec('provenance', '')]), { provenance: { mode: 'max', builderId: '', filename: 'provenance.json', inlineOnly: false } });
  assert.deepEqual(parseAttests([attestSpec('provenance', 'type=provenance,mode=min,inline-only=true')]).provenance, { mode: 'min', builderId: '', filename: 'provenance.json', inlineOnly: true });
  assert.deepEqual(parseAttests([attestSpec('sbom', '')]), { sbom: { filename: 'sbom.spdx.json' } });
  assert.deepEqual(parseAttests([attestSpec('provenance', 'disabled=true')]), {});
  assert.throws(() => parseAttests([attestSpec('provenance', 'mode=full')]), /mode "full": use mode=min or mode=max/);
  assert.throws(() => parseAttests([attestSpec('sbom', 'generator=docker/scout-sbom-indexer')]), /scanner images are not supported/);
  assert.throws(() => parseAttests([attestSpec('vex', '')]), /unknown attestation type "vex"/);
  assert.throws(() => attestSpec('provenance', 'max'), /write key=value pairs/);
});

test('image purls as BuildKit\'s RefToPURL: familiar Docker Hub names, escaped registry port, tag or digest, normalised platform', () => {
  assert.equal(imagePurl('alpine', 'linux/amd64'), 'pkg:docker/alpine@latest?platform=linux%2Famd64');
  assert.equal(imagePurl('docker.io/user/app:1.0', 'linux/arm64/v8'), 'pkg:docker/user/app@1.0?platform=linux%2Farm64');
  assert.equal(imagePurl('127.0.0.1:5000/ref/app:max', 'linux/amd64'), 'pkg:docker/127.0.0.1%3A5000/ref/app@max?platform=linux%2Famd64');
  assert.equal(imagePurl(`r.example/a@${INDEX}`), `pkg:docker/r.example/a?digest=sha256%3A${INDEX.slice(7)}`);
  assert.equal(imagePurl(`r.example/a:v1@${INDEX}`, 'linux/arm/v7'), `pkg:docker/r.example/a@v1?digest=sha256%3A${INDEX.slice(7)}&platform=linux%2Farm%2Fv7`);
  // An image from a client's OCI layout (dockerui's oci-layout context): BuildKit's local image source, a pkg:oci purl.
  assert.equal(imagePurl(`oci-layout://docker.io/library/base@${INDEX}`, 'linux/amd64'), `pkg:oci/base?digest=sha256%3A${INDEX.slice(7)}&platform=linux%2Famd64`);
});

test('invocation parameters: the request\'s frontend attributes without host-specific ones and attest:*', () => {
  const req = SolveRequest.fromPartial({ buildArgs: { FOO: 'baz' }, labels: { l: '1' }, target: 't', dockerfileName: 'Dockerfile' });
  assert.deepEqual(frontendAttrsOf(req), { 'build-arg:FOO': 'baz', 'label:l': '1', target: 't' });
  assert.deepEqual(filterArgs({ platform: 'linux/amd64', 'attest:provenance': 'mode=max', 'image-resolve-mode': 'pull', 'build-arg:B': '2', 'build-arg:A': '1' }), { 'build-arg:A': '1', 'build-arg:B': '2' });
});

const BASE_LAYER = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('base layer'), diffID: d('base diff'), size: 10 };
const RUN_LAYER = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('run layer'), diffID: d('run diff'), size: 11 };
const COPY_LAYER = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: d('copy layer'), diffID: d('copy diff'), size: 12 };
const DOCKERFILE = 'ARG BASE\nFROM ${BASE} AS base\nARG FOO=bar\nRUN echo hi > /hi\nFROM base\nCOPY hello /hello\n';

async function fixture(): Promise<{ plan: BuildPlan; build: ProvenanceBuild; results: Map<string, StageResult> }> {
  const config = { architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [BASE_LAYER.diffID] }, history: [{ created_by: 'base' }] } as unknown as ImageConfigFile;
  const plan = await planBuild(parse(DOCKERFILE), {
    platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', buildArgs: { BASE: 'reg.test:5000/library/busybox:latest', FOO: 'baz' },
    context: { entries: [{ path: 'hello', type: 'file', mode: 0o644, size: 6, digest: d('hello\n') }] } as never,
    resolveImage: async () => ({ ref: `reg.test:5000/library/busybox@${MANIFEST}`, digest: MANIFEST, config }),
  });
  const [base, final] = plan.platforms[0].stages;
  const result = (stageId: string, layers: StageResult['layers']): StageResult => ({ stageId, platform: 'linux/amd64', layers, history: [], config: {}, cacheKey: 'k', verticesTotal: 1, verticesCached: 0 });
  const results = new Map([[base.id, result(base.id, [BASE_LAYER, RUN_LAYER])], [final.id, result(final.id, [BASE_LAYER, RUN_LAYER, COPY_LAYER])]]);
  const build: ProvenanceBuild = {
    buildId: 'b1', startedOn: new Date('2026-01-01T00:00:00Z'), finishedOn: new Date('2026-01-01T00:00:02Z'),
    frontendAttrs: { 'build-arg:BASE': 'reg.test:5000/library/busybox:latest', 'build-arg:FOO': 'baz', platform: 'linux/amd64' },
    builderPlatform: 'linux/amd64', dockerfileName: 'Dockerfile', dockerfile: Buffer.from(DOCKERFILE),
    images: [{ ref: 'reg.test:5000/library/busybox:latest', platform: 'linux/amd64', topDigest: INDEX, manifestDigest: MANIFEST, layerCount: 1 }],
  };
  return { plan, build, results };
}

test('provenance mode=min: BuildKit v0.11.6\'s v0.2 fields, materials pinned to what the tag resolved to, no args, no build config', async () => {
  const { plan, build, results } = await fixture();
  const p = provenancePredicate(build, plan.platforms[0], (id) => results.get(id), { mode: 'min', builderId: '' });
  assert.deepEqual(Object.keys(p), ['builder', 'buildType', 'materials', 'invocation', 'metadata']);
  assert.equal(p.buildType, 'https://mobyproject.org/buildkit@v1');
  assert.deepEqual(p.materials, [{ uri: 'pkg:docker/reg.test%3A5000/library/busybox@latest?platform=linux%2Famd64', digest: { sha256: INDEX.slice(7) } }]);
  assert.deepEqual(p.invocation, { configSource: {}, parameters: { frontend: 'dockerfile.v0', locals: [{ name: 'context' }, { name: 'dockerfile' }] }, environment: { platform: 'linux/amd64' } });
  assert.deepEqual(p.metadata, {
    buildInvocationID: 'b1', buildStartedOn: '2026-01-01T00:00:00.000Z', buildFinishedOn: '2026-01-01T00:00:02.000Z',
    completeness: { parameters: false, environment: true, materials: false }, reproducible: false, 'https://mobyproject.org/buildkit@v1#metadata': {},
  });
});

test('provenance mode=max: build args, the Dockerfile source, step locations and each step\'s layer chain', async () => {
  const { plan, build, results } = await fixture();
  const p = provenancePredicate(build, plan.platforms[0], (id) => results.get(id), { mode: 'max', builderId: 'https://ci.example/run/1' }) as Record<string, any>;
  assert.deepEqual(Object.keys(p), ['builder', 'buildType', 'materials', 'invocation', 'buildConfig', 'metadata']);
  assert.deepEqual(p.builder, { id: 'https://ci.example/run/1' });
  assert.deepEqual(p.invocation.parameters.args, { 'build-arg:BASE': 'reg.test:5000/library/busybox:latest', 'build-arg:FOO': 'baz' });
  assert.equal(p.metadata.completeness.parameters, true);
  const steps = p.buildConfig.llbDefinition as Array<{ id: string; op: any; inputs?: string[] }>;
  assert.equal(steps[0].op.Op.source.identifier, `docker-image://reg.test:5000/library/busybox:latest@${INDEX}`);
  const run = steps.find((s) => s.op.Op?.exec);
  assert.deepEqual(run?.op.Op.exec.meta.args, ['/bin/sh', '-c', 'echo hi > /hi']);
  assert.ok(steps.some((s) => s.op.Op?.source?.identifier === 'local://context'));
  assert.equal(steps.at(-1)!.op.Op, null, 'the last step is the result');
  const meta = p.metadata['https://mobyproject.org/buildkit@v1#metadata'];
  assert.equal(meta.source.infos[0].filename, 'Dockerfile');
  assert.equal(Buffer.from(meta.source.infos[0].data, 'base64').toString(), DOCKERFILE);
  assert.deepEqual(meta.source.locations[run!.id], { locations: [{ ranges: [{ start: { line: 4 }, end: { line: 4 } }] }] });
  assert.deepEqual(meta.source.locations.step0, { locations: [{ ranges: [{ start: { line: 2 }, end: { line: 2 } }] }] }, 'the image source is located at its FROM');
  assert.deepEqual(meta.layers['step0:0'], [[{ mediaType: BASE_LAYER.mediaType, digest: BASE_LAYER.digest, size: 10 }]]);
  assert.equal(meta.layers[`${run!.id}:0`][0].length, 2);
  const copy = steps.find((s) => s.op.Op?.file);
  assert.deepEqual(meta.layers[`${copy!.id}:0`][0].map((l: { digest: string }) => l.digest), [BASE_LAYER.digest, RUN_LAYER.digest, COPY_LAYER.digest]);
  assert.equal(Object.keys(p.buildConfig.digestMapping).length, 2, 'the plan\'s two vertices');
});

test('attestation manifest and index as BuildKit stores them: unknown/unknown, reference annotations, in-toto layers with their predicate type', async () => {
  const { results } = await fixture();
  const image = assembleImage([...results.values()][1], { created: '2026-01-01T00:00:00Z' });
  const prov: PlatformAttestation = { predicateType: 'https://slsa.dev/provenance/v0.2', predicate: { builder: { id: '' } }, filename: 'provenance.json', inlineOnly: true };
  const sbom: PlatformAttestation = { predicateType: 'https://spdx.dev/Document', predicate: { spdxVersion: 'SPDX-2.3' }, filename: 'sbom.spdx.json', inlineOnly: false };
  const subjects = imageSubjects(['reg.test:5000/app:1'], image);
  assert.deepEqual(subjects, [{ name: 'pkg:docker/reg.test%3A5000/app@1?platform=linux%2Famd64', digest: { sha256: image.manifest.descriptor.digest.slice(7) } }]);
  const att = attestationImage(image, [prov, sbom], subjects);
  assert.deepEqual(att.manifest.descriptor.platform, { architecture: 'unknown', os: 'unknown' });
  assert.deepEqual(att.manifest.descriptor.annotations, { 'vnd.docker.reference.digest': image.manifest.descriptor.digest, 'vnd.docker.reference.type': 'attestation-manifest' });
  const m = att.manifest.json as { layers: Array<{ mediaType: string; annotations: Record<string, string> }>; config: { digest: string } };
  assert.deepEqual(m.layers.map((l) => [l.mediaType, l.annotations['in-toto.io/predicate-type']]), [
    ['application/vnd.in-toto+json', 'https://spdx.dev/Document'], ['application/vnd.in-toto+json', 'https://slsa.dev/provenance/v0.2'],
  ]);
  // Current BuildKit's OCI artifact form: the empty config, the artifact type, the image as subject.
  assert.equal(att.config.bytes.toString(), '{}');
  const artifact = att.manifest.json as unknown as Record<string, unknown>;
  assert.deepEqual(Object.keys(artifact), ['schemaVersion', 'mediaType', 'artifactType', 'config', 'layers', 'subject']);
  assert.deepEqual([artifact.artifactType, artifact.config, artifact.subject], ['application/vnd.docker.attestation.manifest.v1+json',
    { mediaType: 'application/vnd.oci.empty.v1+json', digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2, data: 'e30=' },
    { mediaType: image.manifest.descriptor.mediaType, digest: image.manifest.descriptor.digest, size: image.manifest.descriptor.size }]);
  assert.ok(att.manifest.bytes.toString().startsWith('{\n  "schemaVersion": 2,\n  "mediaType": "application/vnd.oci.image.manifest.v1+json",\n  "artifactType"'));
  // oci-artifact=false: the older form, an image config naming the statements.
  const legacy = attestationImage(image, [prov, sbom], subjects, false);
  assert.deepEqual(JSON.parse(legacy.config.bytes.toString()), { architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: legacy.statements.map((s) => s.descriptor.digest) } });
  assert.equal((legacy.manifest.json as unknown as Record<string, unknown>).subject, undefined);
  const statement = JSON.parse(att.statements[1].bytes.toString());
  assert.deepEqual(Object.keys(statement), ['_type', 'predicateType', 'subject', 'predicate']);
  assert.equal(statement._type, 'https://in-toto.io/Statement/v0.1');
  assert.deepEqual(statement.subject, subjects);
  const index = assembleIndex([image, att]).json;
  assert.deepEqual(index.manifests.map((x) => x.platform), [{ architecture: 'amd64', os: 'linux' }, { architecture: 'unknown', os: 'unknown' }]);
  // local/tar outputs: inline-only statements are left out; the rest are indented JSON files.
  assert.deepEqual(attestationFiles([prov, sbom], []).map((f) => f.path), ['sbom.spdx.json']);
});

test('attestations are made only when an output carries them (buildx asks for provenance on every build)', () => {
  const minInline = parseAttests([attestSpec('provenance', 'mode=min,inline-only=true')]);
  assert.equal(wantsAttestations(minInline, [{ type: 'local' }]), false);
  assert.equal(wantsAttestations(minInline, [{ type: 'image' }]), true);
  assert.equal(wantsAttestations(parseAttests([attestSpec('provenance', 'mode=max')]), [{ type: 'tar' }]), true);
  assert.equal(wantsAttestations({}, [{ type: 'image' }]), false);
  assert.equal(wantsAttestations(minInline, []), false);
});
