// OCI annotations asked for through output attributes, as BuildKit's image exporters take them
// (buildx --annotation turns into these): `annotation.K` and `annotation-manifest.K` annotate
// every platform's manifest, `annotation-manifest[os/arch].K` one platform's, `annotation-index.K`
// the index. The images are assembled once for all outputs, so the outputs' annotations merge.
import type { KeyValueSpec } from '@buildyard/proto';

export interface OutputAnnotations {
  index: Record<string, string>;
  /** The manifest annotations of one platform (os/arch[/variant]). */
  manifest(platform: string): Record<string, string>;
}

const ATTR = /^annotation(?:-(index|manifest)(?:\[([^\]]+)\])?)?\.(.+)$/;

export function outputAnnotations(outputs: readonly KeyValueSpec[]): OutputAnnotations {
  const index: Record<string, string> = {};
  const all: Record<string, string> = {};
  const byPlatform = new Map<string, Record<string, string>>();
  for (const o of outputs) {
    for (const [k, v] of Object.entries(o.attrs)) {
      const m = ATTR.exec(k);
      if (!m) {
        if (k.startsWith('annotation')) throw new Error(`output attribute "${k.slice(0, 100)}": use annotation.KEY, annotation-index.KEY, annotation-manifest.KEY or annotation-manifest[os/arch].KEY`);
        continue;
      }
      const [, type, platform, key] = m;
      if (type === 'index') {
        if (platform) throw new Error(`output attribute "${k.slice(0, 100)}": index annotations take no platform`);
        index[key] = v;
      } else if (platform) {
        const p = byPlatform.get(platform) ?? {};
        p[key] = v;
        byPlatform.set(platform, p);
      } else all[key] = v;
    }
  }
  return { index, manifest: (platform) => ({ ...all, ...byPlatform.get(platform) }) };
}
