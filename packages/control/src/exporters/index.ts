// The exporters, one module each behind the Exporter interface, and the --output parser.
import { formatReference, parseReference } from '@buildyard/oci';
import type { KeyValueSpec } from '@buildyard/proto';
import { archiveExporter } from './archiveExporter.js';
export { archiveCreated } from './archiveExporter.js';
import type { ExportFile, ExportSource, Exporter, LayerCompressionOption, OutputType, ParsedOutput } from './Exporter.js';
import { epochSeconds, filesystemExporter } from './filesystemExporter.js';
import { imageExporter } from './imageExporter.js';

export type { ExportFile, ExportSource, ExportStep, Exporter, LayerCompressionOption, OutputType, ParsedOutput } from './Exporter.js';
export { unreportedStep } from './Exporter.js';
export { exportScratchDir } from './filesystemExporter.js';
export { exportLedger } from './exportBudget.js';
export { reclaimExportDirs } from './exportOwners.js';
export { pushImage } from './imageExporter.js';
export { parseAttests, attestSpec, type AttestationOptions, type PlatformAttestation } from './attestations.js';
export { makeAttestations, wantsAttestations, type BuildAttestations } from './buildAttestations.js';
export { frontendAttrsOf, type ImageSourceRecord } from './provenance.js';

const EXPORTERS: Record<OutputType, Exporter> = {
  image: imageExporter, registry: imageExporter, oci: archiveExporter, docker: archiveExporter, local: filesystemExporter, tar: filesystemExporter,
};
const KNOWN = Object.keys(EXPORTERS) as OutputType[];

export function exporterFor(output: Pick<ParsedOutput, 'type'>): Exporter {
  return EXPORTERS[output.type];
}

/** Validates buildx-style outputs; `type=registry` is `type=image,push=true`. */
export function parseOutputs(specs: KeyValueSpec[]): ParsedOutput[] {
  const outputs = specs.map((spec, index): ParsedOutput => {
    const type = spec.type as OutputType;
    if (!KNOWN.includes(type)) throw new Error(`unknown output type "${spec.type}": use one of ${KNOWN.join(', ')}`);
    const names = (spec.attrs.name ?? '').split(',').map((n) => n.trim()).filter(Boolean);
    for (const name of names) parseReference(name);
    const push = type === 'registry' || (type === 'image' && ['true', '1'].includes(spec.attrs.push ?? ''));
    if (push && names.length === 0) throw new Error(`output ${index + 1} (type=${type}) pushes but names no image: add name=REGISTRY/REPO:TAG or -t`);
    const rewrite = spec.attrs['rewrite-timestamp'];
    const rewriteTimestamp = rewrite === undefined ? false : goBool(rewrite);
    if (rewriteTimestamp === undefined) throw new Error(`output ${index + 1} (type=${type}): non-bool value specified for rewrite-timestamp: "${rewrite}": use true or false`);
    // BuildKit's exporter attr: overrides the SOURCE_DATE_EPOCH build arg for this output.
    const epoch = spec.attrs['source-date-epoch'];
    const sourceDateEpoch = epochSeconds(epoch);
    if (epoch && sourceDateEpoch === undefined) throw new Error(`output ${index + 1} (type=${type}): invalid source-date-epoch "${epoch}": use whole seconds since 1970`);
    const compression = IMAGE_TYPES.includes(type) ? parseCompression(spec.attrs, `output ${index + 1} (type=${type})`) : undefined;
    const pushByDigest = (type === 'image' || type === 'registry') && parseFlag(spec.attrs, 'push-by-digest', `output ${index + 1} (type=${type})`);
    if (pushByDigest) {
      // As BuildKit's util/push: a tag would not be pushed, so naming one is a mistake.
      const tagged = names.find((n) => parseReference(n, { defaultTag: false }).tag !== undefined);
      if (tagged) throw new Error(`output ${index + 1} (type=${type}): can't push tagged ref ${formatReference(parseReference(tagged))} by digest: name the repository only (push-by-digest pushes no tag)`);
    }
    const where = `output ${index + 1} (type=${type})`;
    // BuildKit's oci/docker exporters: tar=false fills the client's content store (a layout directory).
    const layoutDir = (type === 'oci' || type === 'docker') && spec.attrs.tar !== undefined && !parseFlag(spec.attrs, 'tar', where);
    const files = type === 'local' || type === 'tar';
    const split = spec.attrs['platform-split'];
    const platformSplit = files && split !== undefined ? goBool(split) : undefined;
    if (files && split !== undefined && platformSplit === undefined) throw new Error(`${where}: non-bool value for platform-split: ${split.slice(0, 40)}; use true or false`);
    const attestationPrefix = files ? spec.attrs['attestation-prefix'] : undefined;
    // mode=delete is the client's (its receiver removes what was not sent); BuildKit checks the word.
    const mode = spec.attrs.mode;
    if (type === 'local' && mode !== undefined && !['', 'copy', 'delete'].includes(mode.trim().toLowerCase())) throw new Error(`${where}: invalid local exporter mode "${mode.slice(0, 40)}": use copy or delete`);
    const ociMediaTypes = IMAGE_TYPES.includes(type) && spec.attrs['oci-mediatypes'] !== undefined ? parseFlag(spec.attrs, 'oci-mediatypes', where) : undefined;
    const ociArtifact = IMAGE_TYPES.includes(type) && spec.attrs['oci-artifact'] !== undefined ? parseFlag(spec.attrs, 'oci-artifact', where) : undefined;
    if (ociArtifact && ociMediaTypes === false) throw new Error(`${where}: exporter option "oci-artifact=true" conflicts with "oci-mediatypes=false"`);
    return {
      index, type, names, push, ...(pushByDigest ? { pushByDigest } : {}), ...(layoutDir ? { layoutDir } : {}),
      ...(platformSplit !== undefined ? { platformSplit } : {}), ...(attestationPrefix ? { attestationPrefix } : {}), rewriteTimestamp: rewriteTimestamp && IMAGE_TYPES.includes(type), sourceDateEpoch,
      ...(compression ? { compression } : {}), ...(ociMediaTypes !== undefined ? { ociMediaTypes } : {}), ...(ociArtifact !== undefined ? { ociArtifact } : {}),
    };
  });
  // One build assembles one image per platform, so its image outputs must agree on its times
  // (BuildKit would export a differently dated image per exporter).
  const images = outputs.filter((o) => IMAGE_TYPES.includes(o.type));
  const other = images.find((o) => o.sourceDateEpoch !== images[0]?.sourceDateEpoch);
  if (other) {
    const shown = (o: ParsedOutput) => (o.sourceDateEpoch === undefined ? 'none' : String(o.sourceDateEpoch));
    throw new Error(`outputs ${images[0]!.index + 1} and ${other.index + 1} ask for different source-date-epoch values (${shown(images[0]!)} and ${shown(other)}): one build makes one image per platform; give every image output the same value, or build once per output`);
  }
  const differing = (setting: (o: ParsedOutput) => unknown) => images.find((o) => JSON.stringify(setting(o) ?? null) !== JSON.stringify(setting(images[0]!) ?? null));
  const otherCompression = differing((o) => o.compression);
  if (otherCompression) throw new Error(`outputs ${images[0]!.index + 1} and ${otherCompression.index + 1} ask for different layer compression: one build makes one image per platform; give every image output the same compression=, compression-level= and force-compression=, or build once per output`);
  const otherArtifact = differing((o) => o.ociArtifact ?? true);
  if (otherArtifact) throw new Error(`outputs ${images[0]!.index + 1} and ${otherArtifact.index + 1} ask for different attestation forms (oci-artifact): one build makes one image per platform; give every image output the same value, or build once per output`);
  const otherTypes = differing((o) => o.ociMediaTypes ?? true);
  if (otherTypes) throw new Error(`outputs ${images[0]!.index + 1} and ${otherTypes.index + 1} ask for different media types (oci-mediatypes): one build makes one image per platform; give every image output the same value, or build once per output`);
  return outputs;
}

/**
 * BuildKit's compression attributes (util/compression ParseAttributes), when any is given: without
 * them the layers stay as the workers compressed them. estargz is not made here.
 */
function parseCompression(attrs: Record<string, string>, where: string): LayerCompressionOption | undefined {
  const { compression: type = 'gzip', 'compression-level': level, 'force-compression': force } = attrs;
  if (attrs.compression === undefined && level === undefined && force === undefined) return undefined;
  if (type === 'estargz') throw new Error(`${where}: compression=estargz is not supported by this builder: use gzip, zstd or uncompressed`);
  if (type !== 'gzip' && type !== 'zstd' && type !== 'uncompressed') throw new Error(`${where}: unsupported compression type ${type}: use gzip, zstd or uncompressed`);
  const forced = parseFlag(attrs, 'force-compression', where);
  if (level === undefined || type === 'uncompressed') return { type, force: forced };
  const n = /^[+-]?\d+$/.test(level) ? Number(level) : NaN;
  if (!Number.isInteger(n)) throw new Error(`${where}: non-integer value ${level} specified for compression-level`);
  const [min, max] = type === 'gzip' ? [0, 9] : [1, 22];
  if (n < min || n > max) throw new Error(`${where}: compression-level ${n} is out of range for ${type}: use ${min} to ${max}`);
  return { type, level: n, force: forced };
}

/** Whether a build's attestation manifests are OCI artifacts (the default), or images with oci-artifact=false. */
export function ociArtifact(outputs: ParsedOutput[]): boolean {
  return outputs.find((o) => IMAGE_TYPES.includes(o.type))?.ociArtifact ?? true;
}

/** Whether a build's images use OCI media types (the default), or Docker's with oci-mediatypes=false. */
export function ociMediaTypes(outputs: ParsedOutput[]): boolean {
  return outputs.find((o) => IMAGE_TYPES.includes(o.type))?.ociMediaTypes ?? true;
}

/** The layer compression a build's images ask for (parseOutputs has made every image output agree). */
export function layerCompression(outputs: ParsedOutput[]): LayerCompressionOption | undefined {
  return outputs.find((o) => IMAGE_TYPES.includes(o.type))?.compression;
}

/**
 * The epochs a build's images are dated by. `image`: as BuildKit v0.11.6's image exporter, the
 * image outputs' source-date-epoch, else the SOURCE_DATE_EPOCH build arg, clamps the image's and
 * the history's times; the build arg also dates every new history entry (dockerfile2llb), so
 * with both the earlier of the two is what new entries say. `layers`: what an output's
 * rewrite-timestamp=true clamps new layers' mtimes to (current BuildKit: the exporter's epoch).
 */
export function imageEpochs(outputs: ParsedOutput[], buildArg: string | undefined): { image?: number; layers?: number } {
  const fromArg = epochSeconds(buildArg);
  const fromOutput = outputs.find((o) => IMAGE_TYPES.includes(o.type))?.sourceDateEpoch;
  const exporter = fromOutput ?? fromArg;
  const image = fromOutput !== undefined && fromArg !== undefined ? Math.min(fromOutput, fromArg) : exporter;
  return { image, layers: outputs.some((o) => o.rewriteTimestamp) ? exporter : undefined };
}

/** The outputs whose layers are the image's: BuildKit's image exporters read rewrite-timestamp. */
const IMAGE_TYPES: OutputType[] = ['image', 'registry', 'oci', 'docker'];

/** A BuildKit exporter flag: absent is false, empty is true, else Go's ParseBool words. */
function parseFlag(attrs: Record<string, string>, key: string, where: string): boolean {
  const value = attrs[key];
  if (value === undefined || value === '') return value !== undefined;
  const flag = goBool(value);
  if (flag === undefined) throw new Error(`${where}: non-bool value ${value} specified for ${key}: use true or false`);
  return flag;
}

/** Go's strconv.ParseBool, which BuildKit's exporter options use; undefined when not a bool. */
export function goBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/**
 * Runs one export to its end: the files it yields go to `onFile`, which reads each file's content
 * before it returns; the references it pushed come back. When `onFile` fails (the client went
 * away) the exporter is closed all the same, so its temporary roots are removed, and the file's
 * content is closed, so no read is left open on a file the exporter removes.
 */
export async function runExport(output: ParsedOutput, source: ExportSource, onFile: (file: ExportFile) => Promise<void> = async () => {}): Promise<string[]> {
  const it = exporterFor(output).export(output, source);
  let finished = false;
  try {
    for (;;) {
      const next = await it.next();
      if (next.done) {
        finished = true;
        return next.value;
      }
      try {
        await onFile(next.value);
      } finally {
        if (!next.value.content?.readableEnded) next.value.content?.destroy();
      }
    }
  } finally {
    if (!finished) await it.return([]);
  }
}
