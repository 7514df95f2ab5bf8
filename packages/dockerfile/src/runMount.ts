// Parses RUN --mount values like BuildKit's instructions/commands_runmount.go.
import { posix } from 'node:path';

export interface ParsedMount {
  type: 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
  target?: string;
  source?: string;
  from?: string;
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  readonly?: boolean;
  mode?: number;
  uid?: number;
  gid?: number;
  required?: boolean;
  size?: number;
  env?: string;
}

/** Splits a CSV field list, honouring double quotes like encoding/csv. */
function splitCsv(value: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"') {
      if (quoted && value[i + 1] === '"') {
        cur += '"';
        i++;
      } else quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  if (quoted) throw new Error(`unterminated quote in --mount=${value}`);
  out.push(cur);
  return out;
}

function parseBool(key: string, v: string | undefined): boolean {
  if (v === undefined) return true;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw new Error(`invalid value for ${key}: ${v} (expected true or false)`);
}

function parseUint(key: string, v: string, radix: 8 | 10): number {
  const re = radix === 8 ? /^[0-7]+$/ : /^\d+$/;
  if (!re.test(v)) throw new Error(`invalid value for ${key}: ${v}`);
  return parseInt(v, radix);
}

/** Docker's units.RAMInBytes: 64m, 1g, 512k, plain bytes. */
function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$/i.exec(v);
  if (!m) throw new Error(`invalid size: ${v}`);
  const mult: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  return Math.floor(Number(m[1]) * mult[m[2].toLowerCase()]);
}

/**
 * Parses one --mount value (already expanded). `workdir` resolves relative targets; `sshIndex`
 * numbers default ssh agent sockets.
 */
export function parseRunMount(value: string, workdir: string, sshIndex: number): ParsedMount {
  const m: ParsedMount = { type: 'bind' };
  const fields = splitCsv(value);
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const v = eq < 0 ? undefined : field.slice(eq + 1);
    if (key === 'type') {
      if (v !== 'bind' && v !== 'cache' && v !== 'tmpfs' && v !== 'secret' && v !== 'ssh') throw new Error(`unsupported mount type "${v ?? ''}" (use bind, cache, tmpfs, secret or ssh)`);
      m.type = v;
      continue;
    }
    if (key === 'readonly' || key === 'ro') {
      m.readonly = parseBool(key, v);
      continue;
    }
    if (key === 'readwrite' || key === 'rw') {
      m.readonly = !parseBool(key, v);
      continue;
    }
    if (key === 'required') {
      m.required = parseBool(key, v);
      continue;
    }
    if (v === undefined) throw new Error(`invalid field '${field}' must be a key=value pair`);
    switch (key) {
      case 'target':
      case 'dst':
      case 'destination':
        m.target = v;
        break;
      case 'source':
      case 'src':
        m.source = v;
        break;
      case 'from':
        m.from = v;
        break;
      case 'id':
        m.id = v;
        break;
      case 'sharing':
        if (v !== 'shared' && v !== 'private' && v !== 'locked') throw new Error(`unsupported sharing value "${v}" (use shared, private or locked)`);
        m.sharing = v;
        break;
      case 'mode':
        m.mode = parseUint(key, v, 8);
        break;
      case 'uid':
        m.uid = parseUint(key, v, 10);
        break;
      case 'gid':
        m.gid = parseUint(key, v, 10);
        break;
      case 'size':
        m.size = parseSize(v);
        break;
      case 'env':
        m.env = v;
        break;
      default:
        throw new Error(`unexpected key '${key}' in '${field}'`);
    }
  }
  if (m.target !== undefined && !m.target.startsWith('/')) m.target = posix.join('/', workdir, m.target);
  if (m.type === 'secret') {
    if (m.id === undefined) {
      if (m.target === undefined) throw new Error('one of id or target must be set for a secret mount, e.g. --mount=type=secret,id=npmrc');
      m.id = posix.basename(m.target);
    }
    if (m.target === undefined && m.env === undefined) m.target = '/run/secrets/' + m.id;
  } else if (m.type === 'ssh') {
    m.id ??= 'default';
    m.target ??= `/run/buildkit/ssh_agent.${sshIndex}`;
  } else if (m.target === undefined) {
    throw new Error(`mount type=${m.type} requires a target, e.g. --mount=type=${m.type},target=/path`);
  }
  if (m.type === 'cache') m.id ??= m.target;
  if (m.type !== 'bind' && m.type !== 'cache' && m.from !== undefined) throw new Error(`from is not allowed for mount type=${m.type}`);
  return m;
}
