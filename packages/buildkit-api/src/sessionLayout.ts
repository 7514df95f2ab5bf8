// buildx --build-context NAME=oci-layout://DIR through the endpoint: buildx serves DIR as a
// content store over the session (`oci:<store id>`) and sends
// `context:NAME=oci-layout://<store id>[:TAG]@<digest>`. The image's documents and blobs are read
// from that store, each hashed as it arrives (a store's say-so is no proof), into a temporary
// layout that is stored as the tenant's context: the frontend then reads it as it reads the
// layout the Buildyard CLI syncs (`oci-layout://local:<context id>@<digest>`, see
// @buildyard/control's layoutImages.ts).
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { isImageIndex, type AnyManifest } from '@buildyard/oci';
import type { ClientSession } from './SessionManager.js';
import { clientContentStore } from './sessionContent.js';

/** What buildx sends: the store's id, an optional tag (already resolved) and the digest. */
const SESSION_LAYOUT = /^oci-layout:\/\/([A-Za-z0-9_-]{1,128})(?::\w[\w.-]{0,127})?@(sha256:[a-f0-9]{64})$/;
/** An index, manifest or config is read whole: more than this is refused, as from a registry. */
const MAX_DOCUMENT_BYTES = 8 << 20;

export function isSessionLayout(value: string): boolean {
  return value.startsWith('oci-layout://');
}

/**
 * Reads the image `value` names from the client's store into a layout directory, stores it with
 * `store` (which returns the context id) and returns the frontend's named-context value. An
 * index brings every image manifest it lists (attestations aside), with their configs and layers.
 */
export async function loadSessionLayout(session: ClientSession, value: string, signal: AbortSignal, store: (dir: string) => Promise<string>, maxBytes: number): Promise<string> {
  const m = SESSION_LAYOUT.exec(value);
  if (!m) throw new Error(`${value.slice(0, 200)}: expected oci-layout://STORE[:TAG]@sha256:DIGEST, as docker buildx sends it`);
  const [, storeId, digest] = m as unknown as [string, string, string];
  const client = clientContentStore(session, `oci:${storeId}`, signal);
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-bk-layout-'));
  try {
    const blobs = join(dir, 'blobs/sha256');
    await mkdir(blobs, { recursive: true });
    const fetched = new Set<string>();
    // What the client sends is spooled here before the context store's own limits apply: held to them.
    let total = 0;
    const fetch = async (want: string, limit = Infinity): Promise<string> => {
      // A digest is a file name here: nothing but sha256 hex reaches the path.
      if (!/^sha256:[a-f0-9]{64}$/.test(String(want))) throw new Error(`the client's layout names ${String(want).slice(0, 80)}, not a sha256 digest`);
      const path = join(blobs, want.slice('sha256:'.length));
      if (fetched.has(want)) return path;
      const hash = createHash('sha256');
      let size = 0;
      const counting = new Transform({
        transform(chunk: Buffer, _enc, done) {
          size += chunk.length;
          total += chunk.length;
          if (size > limit) { done(new Error(`${want.slice(0, 80)} is over ${limit >> 20} MiB; an image's documents are not that large`)); return; }
          if (total > maxBytes) { done(new Error(`the image is larger than ${maxBytes} bytes (limits.maxContextBytes): use a smaller image or push it to a registry`)); return; }
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(client.open(want), counting, createWriteStream(path));
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== want) throw new Error(`the client's layout sent ${got.slice(0, 80)} for ${want.slice(0, 80)}`);
      fetched.add(want);
      return path;
    };
    const document = async (want: string): Promise<AnyManifest> => {
      const text = await readFile(await fetch(want, MAX_DOCUMENT_BYTES), 'utf8');
      try { return JSON.parse(text) as AnyManifest; } catch { throw new Error(`${want.slice(0, 80)} in the client's layout is not JSON`); }
    };
    const top = await document(digest);
    const images: AnyManifest[] = [];
    if (isImageIndex(top)) {
      // One at a time: an index may list many.
      for (const d of top.manifests) {
        if (d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest') images.push(await document(d.digest));
      }
    } else {
      images.push(top);
    }
    for (const image of images) {
      if (isImageIndex(image) || !image.config?.digest || !Array.isArray(image.layers)) throw new Error(`${digest.slice(0, 80)} in the client's layout is not an image or an index of images`);
      await fetch(image.config.digest, MAX_DOCUMENT_BYTES);
      for (const layer of image.layers) await fetch(layer.digest);
    }
    return `oci-layout://local:${await store(dir)}@${digest}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
