// Base-image fixtures: a multi-arch busybox built from Debian's busybox-static packages (no
// internet needed), kept as an OCI layout in a per-machine cache so that seeding a registry
// after the first time is one `skopeo copy`.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { requireCommand } from './host.js';

export type BusyboxArch = 'amd64' | 'arm64';
const ARCHES: BusyboxArch[] = ['amd64', 'arm64'];
const LAYOUT_VERSION = 'v1';

export const cacheRoot = () => process.env.BUILDYARD_CACHE_DIR ?? '/var/cache/buildyard';
const debsDir = () => process.env.BUILDYARD_DEBS_DIR ?? join(cacheRoot(), 'debs');

function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

function busyboxDeb(arch: BusyboxArch): string {
  const dir = debsDir();
  const deb = existsSync(dir) ? readdirSync(dir).find((f) => f.startsWith('busybox-static_') && f.endsWith(`_${arch}.deb`)) : undefined;
  if (!deb) throw new Error(`busybox-static for ${arch} not found in ${dir}: run infra/dev/setup.sh as root (it downloads busybox-static:amd64 and :arm64)`);
  return join(dir, deb);
}

/** The cache directory for the current set of .debs; changes when Debian updates busybox. */
function fixtureDir(): string {
  const key = createHash('sha256').update(LAYOUT_VERSION + ARCHES.map(busyboxDeb).join('\n')).digest('hex').slice(0, 16);
  return join(cacheRoot(), 'fixtures', `busybox-${key}`);
}

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/home:/bin/false\n';
const GROUP = 'root:x:0:\ndaemon:x:1:\nwheel:x:10:root\nnogroup:x:65534:\n';

async function buildRootfs(arch: BusyboxArch, dest: string, applets: string[]): Promise<void> {
  const extracted = await mkdtemp(join(dest + '.deb-'));
  try {
    execFileSync('dpkg-deb', ['-x', busyboxDeb(arch), extracted]);
    for (const dir of ['bin', 'etc', 'home', 'root', 'tmp', 'usr/bin', 'usr/sbin', 'var', 'dev', 'proc', 'sys']) {
      await mkdir(join(dest, dir), { recursive: true, mode: 0o755 });
    }
    await chmod(join(dest, 'tmp'), 0o1777);
    await chmod(join(dest, 'root'), 0o700);
    await rename(join(extracted, 'bin/busybox'), join(dest, 'bin/busybox'));
    for (const applet of applets) {
      if (applet !== 'busybox') await symlink('busybox', join(dest, 'bin', applet));
    }
    await writeFile(join(dest, 'etc/passwd'), PASSWD, { mode: 0o644 });
    await writeFile(join(dest, 'etc/group'), GROUP, { mode: 0o644 });
  } finally {
    await rm(extracted, { recursive: true, force: true });
  }
}

interface Blob { digest: string; size: number; data: Buffer }

function layerFromRootfs(rootfs: string): { tar: Buffer } {
  const entries = readdirSync(rootfs).sort();
  // GNU tar with fixed owners, mtimes and order gives the same bytes on every machine.
  const tar = execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner',
    '--format=posix', '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    '-C', rootfs, '-cf', '-', ...entries], { maxBuffer: 64 << 20 });
  return { tar };
}

function blob(data: Buffer): Blob {
  return { digest: sha256(data), size: data.length, data };
}

async function buildLayout(dir: string): Promise<void> {
  requireCommand('dpkg-deb', 'dpkg');
  const work = dir + '.tmp-' + process.pid;
  await rm(work, { recursive: true, force: true });
  await mkdir(join(work, 'blobs/sha256'), { recursive: true });
  const applets = execFileSync(join('/bin', 'busybox'), ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const blobs: Blob[] = [];
  const manifests: object[] = [];
  for (const arch of ARCHES) {
    const rootfs = join(work, `rootfs-${arch}`);
    await buildRootfs(arch, rootfs, applets);
    const { tar } = layerFromRootfs(rootfs);
    const layer = blob(execFileSync('gzip', ['-n', '-6'], { input: tar, maxBuffer: 64 << 20 }));
    const platform = arch === 'arm64' ? { architecture: 'arm64', os: 'linux', variant: 'v8' } : { architecture: 'amd64', os: 'linux' };
    const config = blob(Buffer.from(JSON.stringify({
      created: '1970-01-01T00:00:00Z',
      ...platform,
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      history: [{ created: '1970-01-01T00:00:00Z', created_by: `buildyard testkit: ${busyboxDeb(arch).split('/').pop()}` }],
    })));
    const manifest = blob(Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size }],
    })));
    blobs.push(layer, config, manifest);
    manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifest.digest, size: manifest.size, platform });
  }
  const index = blob(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })));
  blobs.push(index);
  for (const b of blobs) await writeFile(join(work, 'blobs/sha256', b.digest.slice(7)), b.data);
  await writeFile(join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(work, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: index.digest, size: index.size,
      annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  }));
  await mkdir(join(dir, '..'), { recursive: true });
  try {
    await rename(work, dir);
  } catch (err) {
    // Another process built the same fixture first; theirs is identical.
    await rm(work, { recursive: true, force: true });
    if (!existsSync(join(dir, 'index.json'))) throw err;
  }
}

let layoutReady: Promise<string> | undefined;
/** Path of the cached OCI layout (tag `latest`) holding the multi-arch busybox index. */
export function busyboxLayout(): Promise<string> {
  layoutReady ??= (async () => {
    const dir = fixtureDir();
    if (!existsSync(join(dir, 'index.json'))) await buildLayout(dir);
    return dir;
  })();
  return layoutReady;
}

/** A read-only, cached directory holding the busybox rootfs for `arch`; copy it before writing. */
export async function busyboxRootfs(arch: BusyboxArch): Promise<string> {
  return join(await busyboxLayout(), `rootfs-${arch}`);
}

export interface SeededImage {
  /** e.g. 127.0.0.1:5000/library/busybox:latest */
  reference: string;
  indexDigest: string;
  /** platform (linux/amd64, linux/arm64/v8 is reported as linux/arm64) -> manifest digest */
  manifests: Record<string, string>;
}

export async function seedBusybox(registry: { host: string }, options: { repository?: string; tag?: string } = {}): Promise<SeededImage> {
  requireCommand('skopeo', 'skopeo');
  const layout = await busyboxLayout();
  const reference = `${registry.host}/${options.repository ?? 'library/busybox'}:${options.tag ?? 'latest'}`;
  execFileSync('skopeo', ['copy', '--all', '--preserve-digests', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${reference}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  const top = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const indexDigest: string = top.manifests[0].digest;
  const index = JSON.parse(await readFile(join(layout, 'blobs/sha256', indexDigest.slice(7)), 'utf8'));
  const manifests: Record<string, string> = {};
  for (const m of index.manifests) manifests[`${m.platform.os}/${m.platform.architecture}`] = m.digest;
  return { reference, indexDigest, manifests };
}
