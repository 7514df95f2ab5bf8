// OCI layout directories on this machine: `--output type=oci|docker,tar=false,dest=DIR` and
// `--cache-to type=local,dest=DIR`. As BuildKit's client content store (client/ociindex), a
// layout collects images: blobs are added, and index.json keeps the entries already there
// except those the new ones replace (same ref.name and image name).
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { KeyValueSpec } from '@buildyard/proto';

const REF_NAME = 'org.opencontainers.image.ref.name';
const IMAGE_NAME = 'io.containerd.image.name';

type IndexEntry = { annotations?: Record<string, string> };
interface LayoutIndex { manifests?: IndexEntry[]; [k: string]: unknown }

/** Go's strconv.ParseBool, which BuildKit's exporter attributes use; undefined when not a bool. */
export function goBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/** Whether an output writes an OCI layout directory (`type=oci|docker,tar=false`) rather than one file. */
export function writesLayoutDir(spec: KeyValueSpec): boolean {
  return (spec.type === 'oci' || spec.type === 'docker') && spec.attrs.tar !== undefined && goBool(spec.attrs.tar) === false;
}

/**
 * The index.json to write into a layout directory: `incoming` (what the builder sent) merged
 * into the one `dir` holds now, as ociindex.Put: existing entries stay unless an incoming entry
 * has the same ref.name and image name, and the incoming ones come last. A missing or unreadable
 * index.json counts as empty, as BuildKit's (it rewrites an empty file).
 */
export async function mergedLayoutIndex(dir: string, incoming: Buffer): Promise<Buffer> {
  let parsed: LayoutIndex;
  try { parsed = JSON.parse(incoming.toString('utf8')) as LayoutIndex; } catch {
    throw new Error('the builder sent an index.json that is not JSON; the builder is misbehaving');
  }
  const previous = await readIndex(dir);
  const added = parsed.manifests ?? [];
  const key = (m: IndexEntry) => `${m.annotations?.[REF_NAME] ?? ''}\0${m.annotations?.[IMAGE_NAME] ?? ''}`;
  const replaced = new Set(added.filter((m) => m.annotations?.[REF_NAME] !== undefined).map(key));
  const kept = (Array.isArray(previous?.manifests) ? previous.manifests : []).filter((m) => !replaced.has(key(m)));
  return Buffer.from(JSON.stringify({ ...parsed, manifests: [...kept, ...added] }));
}

/** DIR/index.json, never through a link put there; undefined when missing or not JSON. */
async function readIndex(dir: string): Promise<LayoutIndex | undefined> {
  const handle = await open(join(dir, 'index.json'), constants.O_RDONLY | constants.O_NOFOLLOW).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const parsed = JSON.parse(await handle.readFile('utf8')) as unknown;
    return parsed && typeof parsed === 'object' ? parsed as LayoutIndex : undefined;
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}
