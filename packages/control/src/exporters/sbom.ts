// SBOM attestations: an SPDX 2.3 JSON document (predicate type https://spdx.dev/Document, as
// BuildKit's default scanner gives) of the packages the image's own package databases list.
// BuildKit runs a scanner image (docker/buildkit-syft-scanner); no scanner can be installed
// here and no maintained npm library reads dpkg's status file or apk's installed database, so
// both formats are read by hand below (they are plain RFC 822-style stanzas). An image without
// a database (busybox, scratch) gives a document that holds only the image itself.
import { randomUUID } from 'node:crypto';
import { readLayerFiles, type Descriptor, type LayerReader } from '@buildyard/oci';
import { formatNormalized } from './provenance.js';

export const SPDX_DOCUMENT = 'https://spdx.dev/Document';

/** The files the SBOM is made from, image paths without the leading slash. */
const DPKG_STATUS = 'var/lib/dpkg/status';
const APK_INSTALLED = 'lib/apk/db/installed';
const OS_RELEASE = ['etc/os-release', 'usr/lib/os-release'];

export interface OsPackage {
  type: 'deb' | 'apk';
  name: string;
  version: string;
  arch?: string;
  description?: string;
  maintainer?: string;
  license?: string;
  homepage?: string;
  /** apk's origin / dpkg's Source: the upstream package. */
  source?: string;
}

/** Splits a database into stanzas of `Key: value` fields (dpkg continues values on lines starting with a space). */
function stanzas(text: string, separator: RegExp): Array<Map<string, string>> {
  return text.split(separator).map((block) => {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of block.split('\n')) {
      if (/^\s/.test(line) && last) { fields.set(last, `${fields.get(last)}\n${line.trim()}`); continue; }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      last = line.slice(0, colon);
      fields.set(last, line.slice(colon + 1).trim());
    }
    return fields;
  }).filter((f) => f.size > 0);
}

/** dpkg's status file: only packages whose Status says installed. */
export function parseDpkgStatus(text: string): OsPackage[] {
  return stanzas(text, /\n\s*\n/).filter((f) => f.get('Package') && /\binstalled$/.test(f.get('Status') ?? '')).map((f) => ({
    type: 'deb' as const,
    name: f.get('Package')!,
    version: f.get('Version') ?? '',
    arch: f.get('Architecture'),
    description: f.get('Description')?.split('\n')[0],
    maintainer: f.get('Maintainer'),
    homepage: f.get('Homepage'),
    source: f.get('Source')?.split(' ')[0],
  }));
}

/** apk's installed database: one-letter keys (P name, V version, A arch, T description, L license, o origin, m maintainer, U url). */
export function parseApkInstalled(text: string): OsPackage[] {
  return stanzas(text, /\n\s*\n/).filter((f) => f.get('P')).map((f) => ({
    type: 'apk' as const,
    name: f.get('P')!,
    version: f.get('V') ?? '',
    arch: f.get('A'),
    description: f.get('T'),
    maintainer: f.get('m'),
    license: f.get('L'),
    homepage: f.get('U'),
    source: f.get('o'),
  }));
}

/** os-release's ID and VERSION_ID (the purl's distro qualifier). */
export function parseOsRelease(text: string): { id?: string; versionId?: string } {
  const get = (k: string) => new RegExp(`^${k}=(.*)$`, 'm').exec(text)?.[1]?.replace(/^["']|["']$/g, '');
  return { id: get('ID'), versionId: get('VERSION_ID') };
}

const q = (s: string) => encodeURIComponent(s);

/** The package's purl as syft writes them: pkg:deb/debian/NAME@VERSION?arch=..&distro=debian-12. */
export function packagePurl(p: OsPackage, os: { id?: string; versionId?: string }): string {
  const ns = os.id ?? (p.type === 'apk' ? 'alpine' : 'debian');
  const qualifiers: string[] = [];
  if (p.arch) qualifiers.push(`arch=${q(p.arch)}`);
  if (os.id) qualifiers.push(`distro=${q(`${os.id}${os.versionId ? `-${os.versionId}` : ''}`)}`);
  if (p.source && p.source !== p.name) qualifiers.push(`upstream=${q(p.source)}`);
  return `pkg:${p.type}/${q(ns)}/${q(p.name)}@${q(p.version)}${qualifiers.length ? `?${qualifiers.sort().join('&')}` : ''}`;
}

/** An SPDX license expression when the database's text is one (apk writes `MIT AND BSD-2-Clause`, sometimes lowercase). */
function licenseExpression(license: string | undefined): string {
  if (!license) return 'NOASSERTION';
  // Words, not one regexp: the text is the image's (anyone's), and overlapping repetitions over a
  // megabyte of it would be quadratic. Ids alternate with AND/OR/WITH (any case, any spacing).
  const words = license.trim().split(/\s+/);
  // SPDX list ids carry a capital or a digit (MIT, GPL-2.0-only); apk's free words ("other", "custom") are not ids.
  const isId = (w: string) => /^[A-Za-z0-9.+-]+$/.test(w) && /[A-Z0-9]/.test(w);
  const isOperator = (w: string) => /^(?:and|or|with)$/i.test(w);
  const valid = words.length % 2 === 1 && words.every((w, i) => (i % 2 === 0 ? isId(w) : isOperator(w)));
  return valid ? words.map((w, i) => (i % 2 === 0 ? w : w.toUpperCase())).join(' ') : 'NOASSERTION';
}

const spdxId = (s: string) => s.replace(/[^A-Za-z0-9.-]/g, '-');

/** The image's packages, read from its layers. */
export async function imagePackages(store: LayerReader, layers: readonly Descriptor[]): Promise<{ packages: OsPackage[]; os: { id?: string; versionId?: string }; sources: string[] }> {
  const files = await readLayerFiles(store, layers, [DPKG_STATUS, APK_INSTALLED, ...OS_RELEASE]);
  const osText = OS_RELEASE.map((p) => files.get(p)).find(Boolean);
  const packages: OsPackage[] = [];
  const sources: string[] = [];
  const dpkg = files.get(DPKG_STATUS);
  if (dpkg) { packages.push(...parseDpkgStatus(dpkg.toString('utf8'))); sources.push(DPKG_STATUS); }
  const apk = files.get(APK_INSTALLED);
  if (apk) { packages.push(...parseApkInstalled(apk.toString('utf8'))); sources.push(APK_INSTALLED); }
  return { packages, os: osText ? parseOsRelease(osText.toString('utf8')) : {}, sources };
}

/** The SPDX 2.3 document of one platform's image: the image as the described package, containing the OS packages. */
export function spdxDocument(image: { name: string; platform: string; digest: string }, found: { packages: OsPackage[]; os: { id?: string; versionId?: string } }, created: Date): Record<string, unknown> {
  const root = 'SPDXRef-DocumentRoot-Image';
  const ids = new Set<string>();
  const uniqueId = (base: string) => { let id = base; for (let n = 2; ids.has(id); n++) id = `${base}-${n}`; ids.add(id); return id; };
  const packages = found.packages.map((p) => ({
    name: p.name,
    SPDXID: uniqueId(`SPDXRef-Package-${p.type}-${spdxId(p.name)}-${spdxId(p.version)}${p.arch ? `-${spdxId(p.arch)}` : ''}`),
    versionInfo: p.version,
    supplier: p.maintainer ? `Person: ${p.maintainer}` : 'NOASSERTION',
    downloadLocation: p.homepage || 'NOASSERTION',
    filesAnalyzed: false,
    sourceInfo: p.type === 'deb' ? `acquired package info from DPKG DB: /${DPKG_STATUS}` : `acquired package info from APK DB: /${APK_INSTALLED}`,
    licenseConcluded: 'NOASSERTION',
    licenseDeclared: licenseExpression(p.license),
    copyrightText: 'NOASSERTION',
    ...(p.description ? { description: p.description } : {}),
    externalRefs: [{ referenceCategory: 'PACKAGE-MANAGER', referenceType: 'purl', referenceLocator: packagePurl(p, found.os) }],
    primaryPackagePurpose: 'LIBRARY',
  }));
  return {
    spdxVersion: 'SPDX-2.3',
    dataLicense: 'CC0-1.0',
    SPDXID: 'SPDXRef-DOCUMENT',
    name: image.name,
    documentNamespace: `https://buildyard.invalid/spdx/${encodeURIComponent(image.name)}-${randomUUID()}`,
    creationInfo: { created: created.toISOString().replace(/\.\d+Z$/, 'Z'), creators: ['Tool: buildyard-sbom'] },
    packages: [
      {
        name: image.name,
        SPDXID: root,
        versionInfo: image.digest,
        supplier: 'NOASSERTION',
        downloadLocation: 'NOASSERTION',
        filesAnalyzed: false,
        licenseConcluded: 'NOASSERTION',
        licenseDeclared: 'NOASSERTION',
        copyrightText: 'NOASSERTION',
        comment: `platform ${formatNormalized(image.platform)}${found.os.id ? `, ${found.os.id}${found.os.versionId ? ` ${found.os.versionId}` : ''}` : ''}`,
        primaryPackagePurpose: 'CONTAINER',
      },
      ...packages,
    ],
    relationships: [
      { spdxElementId: 'SPDXRef-DOCUMENT', relationshipType: 'DESCRIBES', relatedSpdxElement: root },
      ...packages.map((p) => ({ spdxElementId: root, relationshipType: 'CONTAINS', relatedSpdxElement: p.SPDXID })),
    ],
  };
}
