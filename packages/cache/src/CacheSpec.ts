/** Where a cache is exported to or imported from (buildx `--cache-to` / `--cache-from` syntax). */
export type CacheSpec =
  /** `imageManifest`: BuildKit's image-manifest=true, the cache as an OCI image manifest (for registries that refuse an index of blobs). */
  | { type: 'registry'; ref: string; mode: 'min' | 'max'; imageManifest?: boolean }
  /**
   * A local cache lives on the client, never on the builder: an export streams back in the
   * Solve stream; an import names the context id under which the client synced the directory.
   */
  | { type: 'local'; tag: string; mode: 'min' | 'max'; contextId?: string; imageManifest?: boolean }
  | { type: 'inline'; mode: 'min' };

/** One buildx key=value spec as it arrives on the wire. */
export interface CacheSpecInput {
  type: string;
  attrs: Record<string, string>;
}

const TYPES = ['registry', 'local', 'inline'];

/**
 * Validates `--cache-to` (direction 'to') or `--cache-from` (direction 'from') specs.
 * Errors are one line naming the flag, the spec and the fix.
 */
export function parseCacheSpecs(specs: CacheSpecInput[], direction: 'to' | 'from'): CacheSpec[] {
  const flag = direction === 'to' ? '--cache-to' : '--cache-from';
  return specs.map((spec, i) => {
    const where = `${flag} #${i + 1} (type=${spec.type || '?'})`;
    const attrs = spec.attrs ?? {};
    const modeAttr = attrs.mode ?? 'min';
    if (modeAttr !== 'min' && modeAttr !== 'max') throw new Error(`${where}: unknown mode "${modeAttr}": use mode=min or mode=max`);
    const mode: 'min' | 'max' = modeAttr;
    const imageManifestAttr = attrs['image-manifest'] ?? 'false';
    if (imageManifestAttr !== 'true' && imageManifestAttr !== 'false') throw new Error(`${where}: image-manifest=${imageManifestAttr.slice(0, 40)}: use image-manifest=true or false`);
    const imageManifest = imageManifestAttr === 'true' ? { imageManifest: true } : {};
    switch (spec.type) {
      case 'registry': {
        const ref = attrs.ref ?? '';
        if (!ref) throw new Error(`${where}: missing ref: add ref=REGISTRY/REPO:TAG`);
        return { type: 'registry', ref, mode, ...imageManifest };
      }
      case 'local': {
        const key = direction === 'to' ? 'dest' : 'src';
        if (attrs.dest !== undefined || attrs.src !== undefined) {
          throw new Error(`${where}: the builder never reads or writes its own files (${key}=${(attrs[key] ?? attrs.dest ?? attrs.src ?? '').slice(0, 100)}): run the build with the buildyard client, which streams a local cache from and to your machine`);
        }
        if (direction === 'to') return { type: 'local', tag: attrs.tag || 'latest', mode, ...imageManifest };
        const contextId = attrs.context ?? '';
        if (!/^sha256:[a-f0-9]{64}$/.test(contextId)) throw new Error(`${where}: missing context=ID: sync the cache directory with ContextSync first (the buildyard client does)`);
        return { type: 'local', tag: attrs.tag || 'latest', mode, contextId };
      }
      case 'inline':
        if (direction === 'from') throw new Error(`${where}: an inline cache is read from the image itself: use --cache-from type=registry,ref=IMAGE`);
        if (modeAttr === 'max') throw new Error(`${where}: inline cache holds only mode=min: use type=registry for mode=max`);
        return { type: 'inline', mode: 'min' };
      default:
        throw new Error(`${where}: unknown cache type "${spec.type}": use one of ${TYPES.join(', ')}`);
    }
  });
}
