// buildx's attestation flags (commands/build.go, util/buildflags/attests.go, build/opt.go):
// `--attest type=TYPE[,disabled=true][,k=v...]` (repeatable), `--provenance VALUE` and
// `--sbom VALUE` as shorthands (a boolean disables or enables the type, anything else is its
// attributes), later flags of one type replacing earlier ones, and buildx's default: provenance
// `mode=min,inline-only=true` unless the build names provenance at all or
// BUILDX_NO_DEFAULT_ATTESTATIONS is true. Validated here (exit 2) before any upload.
import type { KeyValueSpec } from '@buildyard/proto';
import { usageError } from './ClientError.js';
import { parseCsvAttrs } from './parseCsv.js';

const TYPES = ['provenance', 'sbom'];

function parseBool(v: string): boolean | undefined {
  const s = v.trim().toLowerCase();
  if (['1', 't', 'true'].includes(s)) return true;
  if (['0', 'f', 'false'].includes(s)) return false;
  return undefined;
}

/** buildflags.CanonicalizeAttest: `--provenance true|false|ATTRS` as one --attest spec. */
function canonical(type: string, value: string): string {
  const b = parseBool(value);
  return b === undefined ? `type=${type},${value}` : `type=${type},disabled=${!b}`;
}

interface Attest { type: string; disabled: boolean; attrs: Record<string, string>; flag: string }

function parseAttest(spec: string, flag: string): Attest {
  const attrs = parseCsvAttrs(spec, flag);
  const type = attrs.type;
  delete attrs.type;
  if (!type) throw usageError(`${flag} "${spec.slice(0, 200)}": attestation type not specified; write type=provenance or type=sbom`);
  if (!TYPES.includes(type)) throw usageError(`${flag} "${spec.slice(0, 200)}": unknown attestation type "${type.slice(0, 40)}"; use type=provenance or type=sbom`);
  let disabled = false;
  if (attrs.disabled !== undefined) {
    const b = parseBool(attrs.disabled);
    if (b === undefined) throw usageError(`${flag} "${spec.slice(0, 200)}": disabled=${attrs.disabled.slice(0, 40)} is not a boolean; write disabled=true or false`);
    disabled = b;
    delete attrs.disabled;
  }
  if (type === 'provenance' && attrs.mode !== undefined && !['min', 'max'].includes(attrs.mode)) {
    throw usageError(`${flag} "${spec.slice(0, 200)}": mode=${attrs.mode.slice(0, 40)}; use mode=min or mode=max`);
  }
  if (type === 'sbom' && attrs.generator !== undefined) {
    throw usageError(`${flag} "${spec.slice(0, 200)}": SBOM generator images are not supported; drop generator= (the SBOM is read from the image's dpkg/apk databases)`);
  }
  return { type, disabled, attrs, flag };
}

/**
 * The attestations to request, one spec per enabled type (attrs as BuildKit's attest:TYPE
 * value). `env` is read for BUILDX_NO_DEFAULT_ATTESTATIONS.
 */
export function parseAttestFlags(flags: { attest?: readonly string[]; provenance?: string; sbom?: string }, env: NodeJS.ProcessEnv = {}): KeyValueSpec[] {
  const specs: Array<[string, string]> = (flags.attest ?? []).map((a) => [a, '--attest']);
  if (flags.provenance !== undefined && flags.provenance !== '') specs.push([canonical('provenance', flags.provenance), '--provenance']);
  if (flags.sbom !== undefined && flags.sbom !== '') specs.push([canonical('sbom', flags.sbom), '--sbom']);
  const byType = new Map<string, Attest>();
  for (const [spec, flag] of specs) {
    const a = parseAttest(spec, flag);
    byType.set(a.type, a); // a later flag of one type replaces an earlier one, in its place
  }
  if (!byType.has('provenance')) {
    const off = env.BUILDX_NO_DEFAULT_ATTESTATIONS;
    const noDefault = off !== undefined && off !== '' ? parseBool(off) : false;
    if (noDefault === undefined) throw usageError(`BUILDX_NO_DEFAULT_ATTESTATIONS="${off!.slice(0, 40)}" is not a boolean; set it to 1 or 0`);
    if (!noDefault) byType.set('provenance', { type: 'provenance', disabled: false, attrs: { mode: 'min', 'inline-only': 'true' }, flag: 'default' });
  }
  return [...byType.values()].filter((a) => !a.disabled).map((a) => ({ type: a.type, attrs: a.attrs }));
}
