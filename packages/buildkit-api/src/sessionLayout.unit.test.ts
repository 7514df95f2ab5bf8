// buildx's oci-layout named context through the endpoint: the image's blobs are read from the
// client's content store and each is checked against its digest before it is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { GrpcCallError } from './grpcOverHttp2.js';
import type { ClientSession } from './SessionManager.js';
import { loadSessionLayout } from './sessionLayout.js';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A client serving `blobs` from the content store `oci:<id>` (as buildx serves a layout), reads counted. */
function clientWith(blobs: Map<string, Buffer>, override: Map<string, Buffer> = new Map()): { session: ClientSession; stores: string[] } {
  const stores: string[] = [];
  const session = {
    supports: () => true,
    call: (_method: string, headers: Record<string, string>) => {
      stores.push(headers['buildkit-attachable-store-id']!);
      let digest = '';
      return {
        send: async (req: { digest: string }) => { digest = req.digest; },
        end() {}, cancel() {},
        async *messages() {
          const data = override.get(digest) ?? blobs.get(digest);
          if (!data) throw new GrpcCallError(5, `${digest} not found`);
          yield { data };
        },
      };
    },
  } as unknown as ClientSession;
  return { session, stores };
}

function image() {
  const blobs = new Map<string, Buffer>();
  const put = (b: Buffer) => { blobs.set(digestOf(b), b); return { digest: digestOf(b), size: b.length }; };
  const layer = put(Buffer.from('layer bytes'));
  const config = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.digest] } })));
  const manifest = put(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [layer] })));
  const index = put(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, platform: { os: 'linux', architecture: 'amd64' } },
    // An attestation manifest the client need not have: never asked for.
    { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'d'.repeat(64)}`, size: 1, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
  ] })));
  return { blobs, index, manifest, config, layer };
}

test('an index, its image manifests, configs and layers are read from the store buildx names and stored as a layout; the frontend gets its context value', async () => {
  const { blobs, index, manifest, config, layer } = image();
  const { session, stores } = clientWith(blobs);
  let stored: string[] = [];
  const value = await loadSessionLayout(session, `oci-layout://abc123:v1@${index.digest}`, new AbortController().signal, async (dir) => {
    stored = readdirSync(`${dir}/blobs/sha256`).sort();
    return `sha256:${'c'.repeat(64)}`;
  }, 1 << 20);
  assert.equal(value, `oci-layout://local:sha256:${'c'.repeat(64)}@${index.digest}`);
  assert.deepEqual(stored, [index, manifest, config, layer].map((b) => b.digest.slice(7)).sort());
  assert.ok(stores.every((s) => s === 'oci:abc123'));
});

test('a store that sends other bytes than a digest names, a document naming no sha256 digest (a path), or a value without a digest is refused in one line', async () => {
  const signal = new AbortController().signal;
  const store = async () => `sha256:${'c'.repeat(64)}`;
  const { blobs, index, layer } = image();
  const lying = clientWith(blobs, new Map([[layer.digest, Buffer.from('other bytes')]]));
  await assert.rejects(loadSessionLayout(lying.session, `oci-layout://s@${index.digest}`, signal, store, 1 << 20), new RegExp(`the client's layout sent sha256:[a-f0-9]{64} for ${layer.digest}`));
  const evil = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: 'sha256:../../../etc/x', size: 1 }, layers: [] }));
  const traversal = clientWith(new Map([[digestOf(evil), evil]]));
  await assert.rejects(loadSessionLayout(traversal.session, `oci-layout://s@${digestOf(evil)}`, signal, store, 1 << 20), /names sha256:\.\.\/\.\.\/\.\.\/etc\/x, not a sha256 digest/);
  await assert.rejects(loadSessionLayout(lying.session, 'oci-layout://s:v1', signal, store, 1 << 20), /expected oci-layout:\/\/STORE\[:TAG\]@sha256:DIGEST/);
  const huge = Buffer.alloc(9 << 20, 0x20);
  const big = clientWith(new Map([[digestOf(huge), huge]]));
  await assert.rejects(loadSessionLayout(big.session, `oci-layout://s@${digestOf(huge)}`, signal, store, 64 << 20), /is over 8 MiB/);
  // A layer larger than the context limit the spool is held to.
  const { blobs: many, index: top } = image();
  await assert.rejects(loadSessionLayout(clientWith(many).session, `oci-layout://s@${top.digest}`, signal, store, 600), /the image is larger than 600 bytes \(limits\.maxContextBytes\)/);
});
