import { test } from 'node:test';
import assert from 'node:assert/strict';
import { packagePurl, parseApkInstalled, parseDpkgStatus, parseOsRelease, spdxDocument } from './sbom.js';

const DPKG = `Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Version: 12.4+deb12u5
Maintainer: Santiago Vila <sanvila@debian.org>
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Homepage: https://www.gnu.org/software/libc/libc.html
Description: GNU C Library: Shared libraries
`;

const APK = `C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only and other
o:busybox
`;

test('dpkg status: installed packages only, continuation lines, Source as upstream', () => {
  const pkgs = parseDpkgStatus(DPKG);
  assert.deepEqual(pkgs.map((p) => [p.name, p.version, p.arch, p.source]), [['base-files', '12.4+deb12u5', 'amd64', undefined], ['libc6', '2.36-9+deb12u4', 'amd64', 'glibc']]);
  assert.equal(pkgs[0].description, 'Debian base system miscellaneous files');
  const os = parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n');
  assert.deepEqual(os, { id: 'debian', versionId: '12' });
  assert.equal(packagePurl(pkgs[1], os), 'pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12&upstream=glibc');
});

test('apk installed: one-letter keys; licenses as SPDX expressions when they are one', () => {
  const pkgs = parseApkInstalled(APK);
  assert.deepEqual(pkgs.map((p) => [p.name, p.version, p.arch, p.license]), [['musl', '1.2.4-r2', 'x86_64', 'MIT'], ['busybox', '1.36.1-r15', 'x86_64', 'GPL-2.0-only and other']]);
  const doc = spdxDocument({ name: 'r/app:1', platform: 'linux/amd64', digest: 'sha256:' + '0'.repeat(64) }, { packages: pkgs, os: { id: 'alpine', versionId: '3.19.1' } }, new Date('2026-01-01T00:00:00.123Z')) as Record<string, any>;
  const musl = doc.packages.find((p: { name: string }) => p.name === 'musl');
  assert.equal(musl.licenseDeclared, 'MIT');
  assert.equal(doc.packages.find((p: { name: string }) => p.name === 'busybox').licenseDeclared, 'NOASSERTION', '"other" is no SPDX licence id');
  assert.equal(musl.externalRefs[0].referenceLocator, 'pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64&distro=alpine-3.19.1');
});

test('SPDX 2.3 document: the image is the described package and contains the OS packages; an image without databases has only itself', () => {
  const doc = spdxDocument({ name: 'r/app:1', platform: 'linux/arm64/v8', digest: 'sha256:' + '1'.repeat(64) }, { packages: parseDpkgStatus(DPKG), os: { id: 'debian', versionId: '12' } }, new Date('2026-01-01T00:00:00.123Z')) as Record<string, any>;
  assert.equal(doc.spdxVersion, 'SPDX-2.3');
  assert.equal(doc.dataLicense, 'CC0-1.0');
  assert.equal(doc.SPDXID, 'SPDXRef-DOCUMENT');
  assert.equal(doc.creationInfo.created, '2026-01-01T00:00:00Z');
  assert.match(doc.documentNamespace, /^https:\/\//);
  assert.equal(doc.packages.length, 3);
  assert.equal(new Set(doc.packages.map((p: { SPDXID: string }) => p.SPDXID)).size, 3, 'unique SPDX ids');
  assert.deepEqual(doc.relationships.map((r: { relationshipType: string }) => r.relationshipType), ['DESCRIBES', 'CONTAINS', 'CONTAINS']);
  for (const p of doc.packages) assert.match(p.SPDXID, /^SPDXRef-[A-Za-z0-9.-]+$/);
  const empty = spdxDocument({ name: 'busybox', platform: 'linux/amd64', digest: 'sha256:' + '2'.repeat(64) }, { packages: [], os: {} }, new Date()) as Record<string, any>;
  assert.deepEqual(empty.packages.map((p: { primaryPackagePurpose: string }) => p.primaryPackagePurpose), ['CONTAINER']);
  assert.equal(empty.relationships.length, 1);
});

test('licence expressions: ids joined by AND/OR/WITH in any case and spacing; anything else, and an image\'s megabyte of text, is NOASSERTION at once', () => {
  const declared = (license: string) => (spdxDocument({ name: 'r', platform: 'linux/amd64', digest: 'sha256:' + '3'.repeat(64) },
    { packages: [{ name: 'p', version: '1', arch: 'x86_64', type: 'apk', license }], os: {} }, new Date()) as Record<string, any>).packages[1].licenseDeclared;
  assert.equal(declared('MIT  and\tBSD-2-Clause'), 'MIT AND BSD-2-Clause');
  assert.equal(declared('GPL-2.0-or-later with Classpath-exception-2.0 OR MIT'), 'GPL-2.0-or-later WITH Classpath-exception-2.0 OR MIT');
  for (const other of ['MIT BSD', 'MIT and', 'and MIT', 'MIT and and BSD', 'custom', `${' '.repeat(500_000)}x and y`, `${'A'.repeat(1_000_000)}!`, `${'a'.repeat(1_000_000)}`]) {
    assert.equal(declared(other), 'NOASSERTION', other.slice(0, 40));
  }
});
