// Reads an image pushed to the test registry into an OCI layout, as `skopeo copy docker://...
// oci:DIR` did for the suite, but in this process: over the registry's HTTP API (the
// distribution spec, not Buildyard's own registry client), every manifest and blob checked
// against the digest and size that names it. What summarize reads (index.json, the manifest, the
// config, the layers and their media types) is the bytes the registry holds; skopeo's ~100 ms a
// case (a Go process, an HTTPS attempt before plain HTTP, its copy pipeline) is not spent.
import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const INDEXES = new Set([OCI_INDEX, DOCKER_LIST]);
const MANIFESTS = new Set([OCI_MANIFEST, DOCKER_MANIFEST]);
const ACCEPT = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST].join(', ');

interface Descriptor { mediaType: string; digest: string; size: number; platform?: unknown }

function sha256(body: Buffer): string {
  return `sha256:${createHash('sha256').update(body).digest('hex')}`;
}

async function get(url: string, accept?: string): Promise<{ body: Buffer; type: string; digest: string | null }> {
  const res = await fetch(url, { headers: accept ? { accept } : {} });
  if (!res.ok) throw new Error(`reading back the pushed image: GET ${url}: ${res.status} ${res.statusText}`);
  return { body: Buffer.from(await res.arrayBuffer()), type: (res.headers.get('content-type') ?? '').split(';')[0]!.trim(), digest: res.headers.get('docker-content-digest') };
}

function check(what: string, body: Buffer, want: { digest: string; size?: number }): void {
  const got = sha256(body);
  if (got !== want.digest) throw new Error(`reading back the pushed image: ${what} has digest ${got}, named ${want.digest}`);
  if (want.size !== undefined && body.length !== want.size) throw new Error(`reading back the pushed image: ${what} is ${body.length} bytes, its descriptor says ${want.size}`);
}

/**
 * Copies `host/repository:tag` into the OCI layout `dir`: index.json naming the pushed manifest
 * (or index), and under blobs/ every manifest, config and layer it reaches. A blob in `known`
 * (digest to a local file of those bytes: the base image's layers, a megabyte each case) is not
 * downloaded again: the registry must hold it in this repository at the descriptor's size, and
 * the layout links to the local file, the same bytes by their digest.
 */
export async function readPushedImage(host: string, repository: string, tag: string, dir: string, known: ReadonlyMap<string, string> = new Map()): Promise<void> {
  const base = `http://${host}/v2/${repository}`;
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  const written = new Set<string>();
  const store = async (digest: string, body: Buffer) => {
    if (written.has(digest)) return;
    written.add(digest);
    await writeFile(join(dir, 'blobs', digest.replace(':', '/')), body);
  };
  const blob = async (d: Descriptor, what: string) => {
    const local = known.get(d.digest);
    if (local !== undefined) {
      const url = `${base}/blobs/${d.digest}`;
      const res = await fetch(url, { method: 'HEAD' });
      if (!res.ok) throw new Error(`reading back the pushed image: HEAD ${url}: ${res.status} ${res.statusText}`);
      const size = Number(res.headers.get('content-length'));
      if (size !== d.size) throw new Error(`reading back the pushed image: ${what} is ${size} bytes, its descriptor says ${d.size}`);
      if (!written.has(d.digest)) {
        written.add(d.digest);
        await symlink(local, join(dir, 'blobs', d.digest.replace(':', '/')));
      }
      return;
    }
    const { body } = await get(`${base}/blobs/${d.digest}`);
    check(what, body, d);
    await store(d.digest, body);
  };
  const manifest = async (body: Buffer, type: string, digest: string, depth: number): Promise<void> => {
    const doc = JSON.parse(body.toString('utf8')) as { schemaVersion?: number; mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    if (doc.schemaVersion !== 2) throw new Error(`reading back the pushed image: ${digest} has schemaVersion ${doc.schemaVersion}`);
    if (doc.mediaType !== undefined && doc.mediaType !== type) throw new Error(`reading back the pushed image: ${digest} is served as ${type} but says ${doc.mediaType}`);
    await store(digest, body);
    if (INDEXES.has(type)) {
      if (depth > 3) throw new Error('reading back the pushed image: indexes nested too deep');
      for (const m of doc.manifests ?? []) {
        const got = await get(`${base}/manifests/${m.digest}`, ACCEPT);
        check(`manifest ${m.digest}`, got.body, m);
        if (got.type !== m.mediaType) throw new Error(`reading back the pushed image: ${m.digest} is served as ${got.type}, its descriptor says ${m.mediaType}`);
        await manifest(got.body, got.type, m.digest, depth + 1);
      }
      return;
    }
    if (!MANIFESTS.has(type)) throw new Error(`reading back the pushed image: ${digest} has media type ${type}`);
    if (!doc.config) throw new Error(`reading back the pushed image: manifest ${digest} has no config`);
    await Promise.all([blob(doc.config, 'the config'), ...(doc.layers ?? []).map((l, i) => blob(l, `layer ${i + 1}`))]);
  };
  const top = await get(`${base}/manifests/${tag}`, ACCEPT);
  const digest = sha256(top.body);
  if (top.digest && top.digest !== digest) throw new Error(`reading back the pushed image: the registry names ${tag} ${top.digest}, its manifest is ${digest}`);
  await manifest(top.body, top.type, digest, 0);
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: top.type, digest, size: top.body.length }] }));
}
