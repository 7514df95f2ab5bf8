// RUN --mount values, as BuildKit's instructions/commands_runmount.go parses them (parseMount)
// and dockerfile2llb/convert_runmount.go completes them (targets, cache ids, secret paths).
import { posix } from 'node:path';
import { withSuggestion } from './suggest.js';
import { ramInBytes } from './units.js';

export interface ParsedMount {
  type: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  target?: string;
  source?: string;
  from?: string;
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  readonly: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  required: boolean;
  size?: number;
  env?: string;
}

export class MountError extends Error {}

const TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'] as const;
const SHARING = ['shared', 'private', 'locked'] as const;
const ALL_KEYS = ['type', 'from', 'source', 'target', 'readonly', 'id', 'sharing', 'required', 'size', 'mode', 'uid', 'gid', 'src', 'dst', 'destination', 'ro', 'rw', 'readwrite', 'env'];

/** encoding/csv on one line: fields split on commas, double quotes group and "" escapes. */
function csvFields(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let wasQuoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (quoted) {
      if (ch === '"' && value[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"' && cur === '' && !wasQuoted) { quoted = true; wasQuoted = true; }
    else if (ch === ',') { out.push(cur); cur = ''; wasQuoted = false; }
    else if (ch === '"') throw new MountError(`failed to parse csv mounts: parse error on line 1, column ${i + 1}: bare " in non-quoted-field`);
    else cur += ch;
  }
  if (quoted) throw new MountError('failed to parse csv mounts: parse error on line 1, column ' + (value.length + 1) + ': extraneous or missing " in quoted-field');
  out.push(cur);
  return out;
}

/** strconv.ParseBool. */
function parseBool(key: string, v: string): boolean {
  if (/^(1|t|T|TRUE|true|True)$/.test(v)) return true;
  if (/^(0|f|F|FALSE|false|False)$/.test(v)) return false;
  throw new MountError(`invalid value for ${key}: ${v}`);
}

function parseUint(v: string, radix: 8 | 10, what: string): number {
  const re = radix === 8 ? /^[0-7]+$/ : /^\d+$/;
  const n = re.test(v) ? parseInt(v, radix) : NaN;
  if (!Number.isFinite(n) || n > 0xffffffff) throw new MountError(`invalid value ${v} for ${what}`);
  return n;
}

/**
 * Parses one --mount value. `expand` expands each value (BuildKit expands values, not the whole
 * flag); `from` is never expanded. Throws MountError with BuildKit's wording.
 */
export function parseRunMount(raw: string, expand: (word: string) => string): ParsedMount {
  const m: ParsedMount = { type: 'bind', readonly: false, required: false };
  let roAuto = true;
  for (const field of csvFields(raw)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (key === 'readonly' || key === 'ro') { m.readonly = true; roAuto = false; continue; }
      if (key === 'readwrite' || key === 'rw') { m.readonly = false; roAuto = false; continue; }
      if (key === 'required') {
        if (m.type !== 'secret' && m.type !== 'ssh') throw new MountError(`unexpected key '${key}' for mount type '${m.type}'`);
        m.required = true;
        continue;
      }
      throw new MountError(`invalid field '${field}' must be a key=value pair`);
    }
    let value = field.slice(eq + 1);
    if (key === 'from') {
      const at = value.indexOf('$');
      if (at !== -1 && at !== value.length - 1) throw new MountError(`'${key}' doesn't support variable expansion, define alias stage instead`);
    } else value = expand(value);
    switch (key) {
      case 'type': {
        const t = value.toLowerCase();
        if (!(TYPES as readonly string[]).includes(t)) throw new MountError(withSuggestion(`unsupported mount type ${JSON.stringify(value)}`, value, TYPES, true));
        m.type = t as ParsedMount['type'];
        break;
      }
      case 'from': m.from = value; break;
      case 'source': case 'src': m.source = value; break;
      case 'target': case 'dst': case 'destination': m.target = value; break;
      case 'readonly': case 'ro': m.readonly = parseBool(key, value); roAuto = false; break;
      case 'readwrite': case 'rw': m.readonly = !parseBool(key, value); roAuto = false; break;
      case 'required':
        if (m.type !== 'secret' && m.type !== 'ssh') throw new MountError(`unexpected key '${key}' for mount type '${m.type}'`);
        m.required = parseBool(key, value);
        break;
      case 'size': {
        if (m.type !== 'tmpfs') throw new MountError(`unexpected key '${key}' for mount type '${m.type}'`);
        const size = ramInBytes(value);
        if (size === undefined) throw new MountError(`invalid value for ${key}: ${value}`);
        m.size = size;
        break;
      }
      case 'id': m.id = value; break;
      case 'sharing': {
        const s = value.toLowerCase();
        if (!(SHARING as readonly string[]).includes(s)) throw new MountError(withSuggestion(`unsupported sharing value ${JSON.stringify(value)}`, value, SHARING, true));
        m.sharing = s as ParsedMount['sharing'];
        break;
      }
      case 'mode': m.mode = parseUint(value, 8, 'mode'); break;
      case 'uid': m.uid = parseUint(value, 10, 'uid'); break;
      case 'gid': m.gid = parseUint(value, 10, 'gid'); break;
      case 'env': m.env = value; break;
      default:
        throw new MountError(withSuggestion(`unexpected key '${key}' in '${field}'`, key, ALL_KEYS, true));
    }
  }
  if (m.type !== 'secret' && m.type !== 'ssh' && m.type !== 'cache') {
    if (m.mode !== undefined) throw new MountError(`mode not allowed for "${m.type}" type mounts`);
    if (m.uid !== undefined) throw new MountError(`uid not allowed for "${m.type}" type mounts`);
    if (m.gid !== undefined) throw new MountError(`gid not allowed for "${m.type}" type mounts`);
  }
  if (roAuto) m.readonly = m.type !== 'cache' && m.type !== 'tmpfs';
  if (m.type === 'secret') {
    if (m.from !== undefined) throw new MountError('secret mount should not have a from');
    if (m.sharing !== undefined) throw new MountError('secret mount should not define sharing');
    if (!m.source && !m.target && !m.id) throw new MountError('invalid secret mount. one of source, target required');
    if (m.source && m.id) throw new MountError("both source and id can't be set");
  }
  if (m.sharing !== undefined && m.type !== 'cache') throw new MountError(`invalid cache sharing set for ${m.type} mount`);
  return m;
}

/**
 * A secret's or ssh socket's target: a relative one is the step's WORKDIR's (BuildKit's frontend
 * passes it on as written and its executor joins it with the process's cwd).
 */
function inWorkdir(target: string, workdir: string): string {
  return posix.isAbsolute(target) ? target : posix.join('/', workdir, target);
}

/**
 * convert_runmount.go's completion of a parsed mount: relative targets against WORKDIR, the
 * cache id from the target, secret ids and paths, ssh defaults (`sshIndex` numbers sockets).
 */
export function completeRunMount(m: ParsedMount, workdir: string, sshIndex: number): ParsedMount & { target: string; id: string } | ParsedMount {
  const out = { ...m };
  if (m.type === 'secret') {
    // A secret's id defaults to source, then to the target's base name (convert_secrets.go).
    let id = m.id ?? m.source;
    if (!id) id = posix.basename(m.target ?? '');
    out.id = id;
    delete out.source;
    if (m.env === undefined && !m.target) out.target = '/run/secrets/' + posix.basename(id);
    else if (m.target) out.target = inWorkdir(m.target, workdir);
    return out;
  }
  if (m.type === 'ssh') {
    // As written: BuildKit's error names it so ("" for the client's default agent).
    out.id = m.id ?? '';
    out.target = m.target ? inWorkdir(m.target, workdir) : `/run/buildkit/ssh_agent.${sshIndex}`;
    return out;
  }
  if (m.type === 'cache' && !m.id) out.id = posix.normalize(m.target ?? '.');
  let target = m.target ?? '';
  if (!posix.isAbsolute(posix.normalize(target || '.'))) target = posix.join('/', workdir, target);
  target = posix.normalize(target);
  if (target.length > 1 && target.endsWith('/')) target = target.slice(0, -1);
  if (target === '/') throw new MountError(`invalid mount target ${JSON.stringify(target)}`);
  out.target = target;
  return out;
}
