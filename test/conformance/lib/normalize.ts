// Error text of both builders reduced to what a user would search for: no transport prefixes,
// no random ids, no registry port.

const PREFIXES = [
  /^error: /,
  /^error from sender: /,
  /^ERROR: /,
  /^failed to solve: /,
  /^rpc error: code = \w+ desc = /,
  /^failed to solve with frontend dockerfile\.v0: /,
  /^failed to create LLB definition: /,
  /^failed to load LLB: /,
  /^Dockerfile(?:\.[\w.-]+)?:(?:\d+:)? /,
  /^dockerfile:\d+: /,
  // Buildyard names the location as `Dockerfile:N:`; BuildKit's parser says it in words.
  /^dockerfile parse error on line \d+: /,
];

export function normalizeError(message: string, registryHost: string): string {
  let s = message.trim();
  for (let changed = true; changed;) {
    changed = false;
    for (const re of PREFIXES) {
      const next = s.replace(re, '');
      if (next !== s) { s = next; changed = true; }
    }
  }
  return s
    .split(registryHost).join('{{REGISTRY}}')
    .replace(/sha256:[0-9a-f]{64}/g, 'sha256:<digest>')
    .replace(/of ref \S+: /g, 'of ref <id>: ')
    // BuildKit names its own mount of the rootfs (a temporary path) in some errors.
    .replace(/\/\S*?\/cachemounts\/buildkit\d+/g, '<buildkit-mount>')
    .replace(/\s+/g, ' ')
    .trim();
}
