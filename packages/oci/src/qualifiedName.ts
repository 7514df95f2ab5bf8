// The distribution/reference grammar of a qualified name (`domain/path[:tag][@digest]`), read
// by hand in one pass. @swimlane/docker-reference matches it with one JavaScript RegExp whose
// name components (`[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`) backtrack exponentially on a
// failing match: `FROM aaaaaaaaaaaaaaaa!` took 28 s and four more letters minutes, on the
// frontend, for any tenant's Dockerfile (Go's regexp, which BuildKit uses, is linear). The
// library lets a caller replace that one function (parseFamiliarName's second argument); this is
// it, with the library's answers and errors.
import dockerReference from '@swimlane/docker-reference';

const NAME_MAX_LENGTH = 255;
const ALGORITHM_HEX_LENGTHS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
// Each of these is linear: no two repetitions can match the same characters.
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[a-zA-Z][a-zA-Z0-9]*(?:[-_+.][a-zA-Z][a-zA-Z0-9]*)*:[a-fA-F0-9]{32,}$/;
const DOMAIN_COMPONENT = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?$/;
const PORT = /^[0-9]+$/;

/** `[a-z0-9]+` runs joined by `.`, `_`, `__` or any run of `-`. */
function isNameComponent(s: string): boolean {
  let i = 0;
  const alnum = (c: string) => (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  for (;;) {
    const start = i;
    while (i < s.length && alnum(s[i])) i++;
    if (i === start) return false; // every run must have a character, the first and the last too
    if (i === s.length) return true;
    if (s[i] === '.') i++;
    else if (s[i] === '_') i += s[i + 1] === '_' ? 2 : 1;
    else if (s[i] === '-') while (s[i] === '-') i++;
    else return false;
  }
}

function isDomain(s: string): boolean {
  const colon = s.indexOf(':');
  const host = colon < 0 ? s : s.slice(0, colon);
  if (colon >= 0 && !PORT.test(s.slice(colon + 1))) return false;
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** The parts of a valid qualified reference; undefined where the grammar does not match. */
function match(name: string): { path: string; domain: string; repository: string; tag?: string; digest?: string } | undefined {
  const at = name.indexOf('@');
  const digest = at < 0 ? undefined : name.slice(at + 1);
  if (digest !== undefined && !DIGEST.test(digest)) return undefined;
  let path = at < 0 ? name : name.slice(0, at);
  // A tag follows the last ':' after the last '/'; an earlier ':' can only be the domain's port.
  let tag: string | undefined;
  const colon = path.lastIndexOf(':');
  if (colon > path.lastIndexOf('/')) {
    tag = path.slice(colon + 1);
    if (!TAG.test(tag)) return undefined;
    path = path.slice(0, colon);
  }
  const segments = path.split('/');
  // As the RegExp tries it: the first segment as a domain, else every segment as a path component.
  if (segments.length > 1 && isDomain(segments[0]) && segments.slice(1).every(isNameComponent)) {
    return { path, domain: segments[0], repository: segments.slice(1).join('/'), tag, digest };
  }
  if (segments.every(isNameComponent)) return { path, domain: '', repository: path, tag, digest };
  return undefined;
}

/** parseQualifiedName of @swimlane/docker-reference, in linear time. */
export function parseQualifiedName(name: string): dockerReference.Reference {
  const m = match(name);
  if (!m) {
    if (name === '') throw new Error('repository name must have at least one component');
    if (match(name.toLowerCase())) throw new Error('repository name must be lowercase');
    throw new Error('invalid reference format');
  }
  if (m.path.length > NAME_MAX_LENGTH) throw new Error(`repository name must not be more than ${NAME_MAX_LENGTH} characters`);
  if (m.digest !== undefined) {
    const [algorithm, hex] = m.digest.split(':');
    if (!(algorithm in ALGORITHM_HEX_LENGTHS)) throw new Error('unsupported digest algorithm');
    if (ALGORITHM_HEX_LENGTHS[algorithm] !== hex.length) throw new Error('invalid checksum digest length');
  }
  return new dockerReference.Reference({ domain: m.domain, repository: m.repository, tag: m.tag, digest: m.digest });
}
