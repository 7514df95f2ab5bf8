// The functions buildx's bake offers (docker/buildx bake/hclparser/stdlib.go: go-cty's stdlib,
// go-cty-funcs' cidr/crypto/encoding/uuid, HCL's try/can/convert, and bake's own), with cty's
// argument conversions and results.
import { createHash, createPrivateKey, privateDecrypt, randomUUID, constants as cryptoConstants } from 'node:crypto';
import { homedir } from 'node:os';
import { posix } from 'node:path';
import bcrypt from 'bcryptjs';
import semver from 'semver';
import { HclError, type Expr, type Pos } from './ast.js';
import { Evaluator, csvRows, equal, formatNumber, fromJson, isObject, obj, sortedKeys, toBool, toList, toNum, toStr, typeName, type Fn, type Scope, type Value } from './eval.js';
import { convert, distinctSorted, parseType } from './types.js';

type Impl = (args: Value[], pos: Pos) => Value;

function fn(params: number | [number, number], impl: Impl): Fn {
  const [min, max] = typeof params === 'number' ? [params, params] : params;
  return {
    call(args, pos) {
      if (args.length < min || args.length > max) {
        const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
        throw new HclError(pos, `wrong number of arguments: ${want} expected, ${args.length} given`);
      }
      return impl(args, pos);
    },
  };
}

const str = (args: Value[], i: number, pos: Pos) => toStr(args[i], pos, `argument ${i + 1}`);
const num = (args: Value[], i: number, pos: Pos) => toNum(args[i], pos, `argument ${i + 1}`);
const list = (args: Value[], i: number, pos: Pos) => toList(args[i], pos, `argument ${i + 1}`);
const map = (args: Value[], i: number, pos: Pos) => {
  const v = args[i];
  if (!isObject(v)) throw new HclError(pos, `argument ${i + 1} is a ${typeName(v)}; a map or object is required`);
  return v;
};
const int = (args: Value[], i: number, pos: Pos) => {
  const n = num(args, i, pos);
  if (!Number.isInteger(n)) throw new HclError(pos, `argument ${i + 1} must be a whole number`);
  return n;
};

const str1 = (f: (s: string) => Value): Fn => fn(1, (a, p) => f(str(a, 0, p)));
const num2 = (f: (x: number, y: number) => Value): Fn => fn(2, (a, p) => f(num(a, 0, p), num(a, 1, p)));
const hash = (alg: string): Fn => str1((s) => createHash(alg).update(s).digest('hex'));

/** Go's regexp syntax where it differs from JavaScript's: (?P<name>...) groups, ${1} in replacements. */
function goRegex(pattern: string, pos: Pos, flags = ''): RegExp {
  let p = pattern.replace(/\(\?P</g, '(?<');
  let f = flags;
  const inline = /^\(\?([imsU]+)\)/.exec(p);
  if (inline) { p = p.slice(inline[0].length); for (const c of inline[1]) if (c !== 'U' && !f.includes(c)) f += c; }
  try { return new RegExp(p, f + 'u'); } catch (e) { throw new HclError(pos, `invalid regular expression "${pattern.slice(0, 100)}": ${(e as Error).message}`); }
}
const goReplacement = (r: string) => r.replace(/\$\{(\w+)\}/g, (_m, n: string) => (/^\d+$/.test(n) ? `$${n}` : `$<${n}>`));

function regexResult(m: RegExpExecArray): Value {
  if (m.groups && Object.keys(m.groups).length > 0) return obj(Object.entries(m.groups).map(([k, v]) => [k, v ?? null]));
  if (m.length > 1) return m.slice(1).map((x) => x ?? null);
  return m[0];
}

/** go-cty's format verbs: %% %v %#v %t %b %d %o %x %X %e %E %f %g %G %s %q, flags - + 0 space, width, precision. */
function format(fmt: string, args: Value[], pos: Pos): string {
  let out = '';
  let argi = 0;
  const re = /%([-+ 0#]*)(\d+)?(?:\.(\d+))?([%vtbdoxXeEfgGsq])/gy;
  let i = 0;
  while (i < fmt.length) {
    const pct = fmt.indexOf('%', i);
    if (pct < 0) { out += fmt.slice(i); break; }
    out += fmt.slice(i, pct);
    re.lastIndex = pct;
    const m = re.exec(fmt);
    if (!m) throw new HclError(pos, `format: unsupported or malformed verb at "${fmt.slice(pct, pct + 5)}"`);
    i = re.lastIndex;
    const [, flags, width, prec, verb] = m;
    if (verb === '%') { out += '%'; continue; }
    if (argi >= args.length) throw new HclError(pos, `format: not enough arguments for "${m[0]}"`);
    const a = args[argi++];
    let s: string;
    switch (verb) {
      case 'v': s = typeof a === 'string' || typeof a === 'number' || typeof a === 'boolean' ? toStr(a, pos) : JSON.stringify(a); if (flags.includes('#')) s = JSON.stringify(a); break;
      case 't': s = String(toBool(a, pos)); break;
      case 's': s = toStr(a, pos); if (prec !== undefined) s = [...s].slice(0, Number(prec)).join(''); break;
      case 'q': s = JSON.stringify(toStr(a, pos)); break;
      case 'd': { const n = toNum(a, pos); if (!Number.isInteger(n)) throw new HclError(pos, `format: %d needs a whole number, not ${formatNumber(n)}`); s = (flags.includes('+') && n >= 0 ? '+' : flags.includes(' ') && n >= 0 ? ' ' : '') + n.toFixed(0); break; }
      case 'b': s = Math.trunc(toNum(a, pos)).toString(2); break;
      case 'o': s = Math.trunc(toNum(a, pos)).toString(8); break;
      case 'x': s = typeof a === 'string' ? Buffer.from(a).toString('hex') : Math.trunc(toNum(a, pos)).toString(16); break;
      case 'X': s = (typeof a === 'string' ? Buffer.from(a).toString('hex') : Math.trunc(toNum(a, pos)).toString(16)).toUpperCase(); break;
      case 'e': case 'E': { const n = toNum(a, pos); s = n.toExponential(prec === undefined ? 6 : Number(prec)).replace(/e([+-])(\d)$/, 'e$10$2'); if (verb === 'E') s = s.toUpperCase(); break; }
      case 'f': { const n = toNum(a, pos); s = (flags.includes('+') && n >= 0 ? '+' : '') + n.toFixed(prec === undefined ? 6 : Number(prec)); break; }
      default: { s = goG(toNum(a, pos), prec === undefined ? undefined : Number(prec)); if (verb === 'G') s = s.toUpperCase(); }
    }
    if (width !== undefined && s.length < Number(width)) {
      const padLen = Number(width) - s.length;
      if (flags.includes('-')) s += ' '.repeat(padLen);
      else if (flags.includes('0') && /[dfeEgGbxXo]/.test(verb)) s = s.startsWith('-') || s.startsWith('+') ? s[0] + '0'.repeat(padLen) + s.slice(1) : '0'.repeat(padLen) + s;
      else s = ' '.repeat(padLen) + s;
    }
    out += s;
  }
  if (argi < args.length) throw new HclError(pos, `format: too many arguments; ${argi} used, ${args.length} given`);
  return out;
}

/** Go's %g: shortest (or prec significant) digits; the exponent form below 1e-4 or from 1e6 (1e(prec)). */
function goG(n: number, prec?: number): string {
  if (n === 0 || !Number.isFinite(n)) return String(n);
  const p = prec === undefined ? undefined : Math.max(prec, 1);
  const [m, e] = (p === undefined ? n.toExponential() : n.toExponential(p - 1)).split('e');
  const neg = m.startsWith('-');
  const digits = m.replace('-', '').replace('.', '').replace(/0+$/, '') || '0';
  const exp = Number(e);
  let eprec = p ?? 6;
  if (p !== undefined && eprec > digits.length && digits.length >= exp + 1) eprec = digits.length;
  if (exp < -4 || exp >= eprec) {
    const mant = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${neg ? '-' : ''}${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  const fixed = exp >= 0
    ? digits.slice(0, exp + 1).padEnd(exp + 1, '0') + (digits.length > exp + 1 ? `.${digits.slice(exp + 1)}` : '')
    : `0.${'0'.repeat(-exp - 1)}${digits}`;
  return `${neg ? '-' : ''}${fixed}`;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

function parseRfc3339(s: string, pos: Pos): { date: Date; offsetMin: number } {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.exec(s);
  if (!m) throw new HclError(pos, `"${s.slice(0, 60)}" is not an RFC 3339 timestamp (e.g. 2024-01-02T15:04:05Z)`);
  const offsetMin = /[Zz]/.test(m[8]) ? 0 : (m[8][0] === '-' ? -1 : 1) * (Number(m[8].slice(1, 3)) * 60 + Number(m[8].slice(4, 6)));
  const utc = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), m[7] ? Math.floor(Number(m[7]) * 1000) : 0) - offsetMin * 60_000;
  return { date: new Date(utc), offsetMin };
}

/** Terraform's formatdate spec (YYYY, MM, DD, hh, mm, ss, ZZZZZ, 'literals', ...). */
function formatDate(spec: string, date: Date, offsetMin: number, pos: Pos): string {
  const d = new Date(date.getTime() + offsetMin * 60_000); // read with getUTC* in the zone's local time
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const off = (sep: string) => `${offsetMin < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offsetMin) / 60))}${sep}${pad(Math.abs(offsetMin) % 60)}`;
  const h12 = d.getUTCHours() % 12 === 0 ? 12 : d.getUTCHours() % 12;
  const tokens: Record<string, () => string> = {
    YYYY: () => pad(d.getUTCFullYear(), 4), YY: () => pad(d.getUTCFullYear() % 100),
    MMMM: () => MONTHS[d.getUTCMonth()], MMM: () => MONTHS[d.getUTCMonth()].slice(0, 3), MM: () => pad(d.getUTCMonth() + 1), M: () => String(d.getUTCMonth() + 1),
    DD: () => pad(d.getUTCDate()), D: () => String(d.getUTCDate()),
    EEEE: () => DAYS[d.getUTCDay()], EEE: () => DAYS[d.getUTCDay()].slice(0, 3),
    hh: () => pad(d.getUTCHours()), h: () => String(d.getUTCHours()), HH: () => pad(h12), H: () => String(h12),
    AA: () => (d.getUTCHours() < 12 ? 'AM' : 'PM'), aa: () => (d.getUTCHours() < 12 ? 'am' : 'pm'),
    mm: () => pad(d.getUTCMinutes()), m: () => String(d.getUTCMinutes()), ss: () => pad(d.getUTCSeconds()), s: () => String(d.getUTCSeconds()),
    ZZZZZ: () => (offsetMin === 0 ? 'Z' : off(':')), ZZZZ: () => off(''), ZZZ: () => (offsetMin === 0 ? 'UTC' : off('')), Z: () => (offsetMin === 0 ? 'Z' : off(':')),
  };
  const names = Object.keys(tokens).sort((a, b) => b.length - a.length);
  let out = '';
  let i = 0;
  while (i < spec.length) {
    if (spec[i] === "'") {
      const end = spec.indexOf("'", i + 1);
      if (end < 0) throw new HclError(pos, 'formatdate: unterminated literal \'...\' in the format');
      out += end === i + 1 ? "'" : spec.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    const t = names.find((n) => spec.startsWith(n, i));
    if (t) { out += tokens[t](); i += t.length; continue; }
    if (/[A-Za-z]/.test(spec[i])) throw new HclError(pos, `formatdate: invalid format letter "${spec[i]}"; quote literal text in '...'`);
    out += spec[i++];
  }
  return out;
}

function timeadd(ts: string, dur: string, pos: Pos): string {
  const { date, offsetMin } = parseRfc3339(ts, pos);
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const m = /^([+-]?)((?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.exec(dur);
  if (!m) throw new HclError(pos, `timeadd: "${dur}" is not a duration such as 1h30m or -10s`);
  let ms = 0;
  for (const part of m[2].matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) ms += Number(part[1]) * units[part[2]];
  if (m[1] === '-') ms = -ms;
  const out = new Date(date.getTime() + ms);
  return formatDate("YYYY-MM-DD'T'hh:mm:ssZZZZZ", out, offsetMin, pos);
}

// IPv4 and IPv6 prefixes as BigInt, for the cidr* functions.
function parseIp(s: string, pos: Pos): { v: bigint; bits: 32 | 128 } {
  if (s.includes(':')) {
    const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
    const hs = head ? head.split(':') : [];
    const ts = tail !== undefined && tail !== '' ? tail.split(':') : [];
    const groups = tail === undefined ? hs : [...hs, ...Array(8 - hs.length - ts.length).fill('0'), ...ts];
    if (groups.length !== 8 || groups.some((g) => !/^[0-9a-fA-F]{1,4}$/.test(g))) throw new HclError(pos, `invalid IP address "${s}"`);
    return { v: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n), bits: 128 };
  }
  const parts = s.split('.');
  if (parts.length !== 4 || parts.some((x) => !/^\d{1,3}$/.test(x) || Number(x) > 255)) throw new HclError(pos, `invalid IP address "${s}"`);
  return { v: parts.reduce((acc, x) => (acc << 8n) | BigInt(Number(x)), 0n), bits: 32 };
}
function formatIp(v: bigint, bits: number): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((sh) => String((v >> sh) & 255n)).join('.');
  const groups: string[] = [];
  for (let k = 7; k >= 0; k--) groups.push(((v >> BigInt(k * 16)) & 0xffffn).toString(16));
  // The longest run of zero groups becomes "::", as Go's net.IP.String writes it.
  let best = -1, bestLen = 1;
  for (let k = 0; k < 8;) {
    if (groups[k] !== '0') { k++; continue; }
    let e = k; while (e < 8 && groups[e] === '0') e++;
    if (e - k > bestLen) { best = k; bestLen = e - k; }
    k = e;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
function parseCidr(s: string, pos: Pos): { net: bigint; bits: 32 | 128; len: number } {
  const [ip, len] = s.split('/');
  const p = parseIp(ip ?? '', pos);
  const n = Number(len);
  if (len === undefined || !/^\d+$/.test(len) || n > p.bits) throw new HclError(pos, `invalid CIDR address "${s}"`);
  const mask = ((1n << BigInt(p.bits)) - 1n) ^ ((1n << BigInt(p.bits - n)) - 1n);
  return { net: p.v & mask, bits: p.bits, len: n };
}
function subnet(base: string, newbits: number, netnum: number, pos: Pos): string {
  const c = parseCidr(base, pos);
  const len = c.len + newbits;
  if (len > c.bits) throw new HclError(pos, `cidrsubnet: ${newbits} more bits do not fit in ${base}`);
  if (netnum < 0 || BigInt(netnum) >= 1n << BigInt(newbits)) throw new HclError(pos, `cidrsubnet: network number ${netnum} does not fit in ${newbits} bits`);
  const net = c.net | (BigInt(netnum) << BigInt(c.bits - len));
  return `${formatIp(net, c.bits)}/${len}`;
}

function uuidv5(namespace: string, name: string, pos: Pos): string {
  const known: Record<string, string> = {
    dns: '6ba7b810-9dad-11d1-80b4-00c04fd430c8', url: '6ba7b811-9dad-11d1-80b4-00c04fd430c8',
    oid: '6ba7b812-9dad-11d1-80b4-00c04fd430c8', x500: '6ba7b814-9dad-11d1-80b4-00c04fd430c8',
  };
  const ns = (known[namespace] ?? namespace).replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(ns)) throw new HclError(pos, `uuidv5: namespace must be dns, url, oid, x500 or a UUID, not "${namespace}"`);
  const h = createHash('sha1').update(Buffer.from(ns, 'hex')).update(name).digest();
  h[6] = (h[6] & 0x0f) | 0x50;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function csvdecode(text: string, pos: Pos): Value {
  const rows = csvRows(text);
  if (rows.length === 0) throw new HclError(pos, 'csvdecode: missing header line');
  const [head, ...body] = rows;
  return body.map((r, k) => {
    if (r.length !== head.length) throw new HclError(pos, `csvdecode: line ${k + 2} has ${r.length} fields, the header ${head.length}`);
    return obj(head.map((h, i) => [h, r[i]]));
  });
}

function semverCheck(version: string, constraint: string, pos: Pos): boolean {
  const v = semver.parse(version, { loose: true }) ?? semver.coerce(version);
  if (!v) throw new HclError(pos, `semvercmp: "${version}" is not a version`);
  // Masterminds/semver: "," joins constraints with AND (npm semver uses a space), "||" is OR.
  const range = constraint.split('||').map((alt) => alt.split(',').map((c) => c.trim().replace(/^(=|!=|>=|<=|>|<|~>|~|\^)\s+/, '$1')).join(' ')).join(' || ');
  const neq = /!=\s*([^\s,|]+)/g;
  const excluded = [...range.matchAll(neq)].map((m) => m[1]);
  const cleaned = range.replace(neq, '').replace(/~>/g, '~');
  let ok: boolean;
  try { ok = cleaned.trim() === '' ? true : semver.satisfies(v, cleaned, { loose: true }); } catch { throw new HclError(pos, `semvercmp: "${constraint}" is not a version constraint`); }
  return ok && !excluded.some((x) => { const e = semver.coerce(x); return e !== null && semver.eq(v, e); });
}

function flatten(v: Value[]): Value[] {
  return v.flatMap((x) => (Array.isArray(x) ? flatten(x) : [x]));
}

function jsonValue(v: Value, pos: Pos): unknown {
  if (Array.isArray(v)) return v.map((x) => jsonValue(x, pos));
  if (isObject(v)) return Object.fromEntries(sortedKeys(v).map((k) => [k, jsonValue(v[k], pos)]));
  if (typeof v === 'object' && v !== null) throw new HclError(pos, `cannot encode a ${typeName(v)} as JSON`);
  return v;
}

export function stdlib(): Map<string, Fn> {
  const f = new Map<string, Fn>();
  const cmp = (pred: (a: number, b: number) => boolean) => num2((a, b) => pred(a, b));
  f.set('absolute', fn(1, (a, p) => Math.abs(num(a, 0, p))));
  f.set('add', num2((a, b) => a + b));
  f.set('and', fn(2, (a, p) => toBool(a[0], p) && toBool(a[1], p)));
  f.set('base64decode', str1((s) => {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) throw new Error('the string is not valid base64');
    return Buffer.from(s, 'base64').toString('utf8');
  }));
  f.set('base64encode', str1((s) => Buffer.from(s, 'utf8').toString('base64')));
  f.set('basename', str1((s) => (s === '' ? '.' : posix.basename(s.replace(/\/+$/, '')) || '/')));
  f.set('bcrypt', fn([1, 2], (a, p) => bcrypt.hashSync(str(a, 0, p), a.length > 1 ? int(a, 1, p) : 10)));
  const bytesUnsupported = (name: string): Fn => fn([0, Infinity], (_a, p) => { throw new HclError(p, `${name}(): bake has no bytes values to pass to it`); });
  f.set('byteslen', bytesUnsupported('byteslen'));
  f.set('bytesslice', bytesUnsupported('bytesslice'));
  f.set('can', { lazy: true, call: (args: Expr[], scope: Scope, ev: Evaluator, pos: Pos) => {
    if (args.length !== 1) throw new HclError(pos, 'can() takes one argument');
    try { ev.eval(args[0], scope); return true; } catch (e) { if (e instanceof HclError) return false; throw e; }
  } });
  f.set('ceil', fn(1, (a, p) => Math.ceil(num(a, 0, p))));
  f.set('chomp', str1((s) => s.replace(/(\r\n|\n|\r)+$/, '')));
  f.set('chunklist', fn(2, (a, p) => {
    const l = list(a, 0, p), n = int(a, 1, p);
    if (n < 0) throw new Error('the chunk size must not be negative');
    if (n === 0) return [l];
    const out: Value[] = [];
    for (let i = 0; i < l.length; i += n) out.push(l.slice(i, i + n));
    return out;
  }));
  f.set('cidrhost', fn(2, (a, p) => {
    const c = parseCidr(str(a, 0, p), p);
    let h = BigInt(int(a, 1, p));
    const size = 1n << BigInt(c.bits - c.len);
    if (h < 0n) h += size;
    if (h < 0n || h >= size) throw new Error(`host number ${a[1] as number} does not fit in ${str(a, 0, p)}`);
    return formatIp(c.net | h, c.bits);
  }));
  f.set('cidrnetmask', fn(1, (a, p) => {
    const c = parseCidr(str(a, 0, p), p);
    if (c.bits !== 32) throw new Error('only IPv4 prefixes have a netmask');
    return formatIp(((1n << 32n) - 1n) ^ ((1n << BigInt(32 - c.len)) - 1n), 32);
  }));
  f.set('cidrsubnet', fn(3, (a, p) => subnet(str(a, 0, p), int(a, 1, p), int(a, 2, p), p)));
  f.set('cidrsubnets', fn([1, Infinity], (a, p) => {
    const base = str(a, 0, p);
    const c = parseCidr(base, p);
    let next = c.net;
    const out: Value[] = [];
    for (let i = 1; i < a.length; i++) {
      const nb = int(a, i, p);
      const len = c.len + nb;
      if (len > c.bits) throw new Error(`${nb} more bits do not fit in ${base}`);
      const step = 1n << BigInt(c.bits - len);
      if (next % step !== 0n) next = (next / step + 1n) * step;
      if (next + step > c.net + (1n << BigInt(c.bits - c.len))) throw new Error(`not enough room in ${base} for the subnets`);
      out.push(`${formatIp(next, c.bits)}/${len}`);
      next += step;
    }
    return out;
  }));
  f.set('coalesce', fn([1, Infinity], (a) => {
    // cty's coalesce skips nulls only (Terraform's also skips ""; bake uses cty's).
    const v = a.find((x) => x !== null);
    if (v === undefined) throw new Error('no non-null arguments');
    return v;
  }));
  f.set('coalescelist', fn([1, Infinity], (a, p) => a.find((x, i) => toList(x, p, `argument ${i + 1}`).length > 0) ?? (() => { throw new Error('no non-empty list arguments'); })()));
  f.set('compact', fn(1, (a, p) => list(a, 0, p).filter((x) => x !== null && x !== '').map((x) => toStr(x, p))));
  f.set('concat', fn([1, Infinity], (a, p) => a.flatMap((x, i) => toList(x, p, `argument ${i + 1}`))));
  f.set('contains', fn(2, (a, p) => list(a, 0, p).some((x) => equal(x, a[1]))));
  f.set('convert', { lazy: true, call: (args: Expr[], scope: Scope, ev: Evaluator, pos: Pos) => {
    if (args.length !== 2) throw new HclError(pos, 'convert() takes a value and a type');
    return convert(ev.eval(args[0], scope), parseType(args[1]), pos);
  } });
  f.set('csvdecode', fn(1, (a, p) => csvdecode(str(a, 0, p), p)));
  f.set('dirname', str1((s) => posix.dirname(s)));
  f.set('distinct', fn(1, (a, p) => {
    const out: Value[] = [];
    for (const x of list(a, 0, p)) if (!out.some((y) => equal(x, y))) out.push(x);
    return out;
  }));
  f.set('divide', num2((a, b) => { if (b === 0) throw new Error('division by zero'); return a / b; }));
  f.set('element', fn(2, (a, p) => {
    const l = list(a, 0, p), i = int(a, 1, p);
    if (l.length === 0) throw new Error('cannot use element function with an empty list');
    if (i < 0) throw new Error('cannot use element function with a negative index');
    return l[i % l.length];
  }));
  f.set('equal', fn(2, (a) => equal(a[0], a[1])));
  f.set('flatten', fn(1, (a, p) => flatten(list(a, 0, p))));
  f.set('floor', fn(1, (a, p) => Math.floor(num(a, 0, p))));
  f.set('format', fn([1, Infinity], (a, p) => format(str(a, 0, p), a.slice(1), p)));
  f.set('formatdate', fn(2, (a, p) => { const t = parseRfc3339(str(a, 1, p), p); return formatDate(str(a, 0, p), t.date, t.offsetMin, p); }));
  f.set('formattimestamp', fn(2, (a, p) => {
    const spec = str(a, 0, p);
    let t: { date: Date; offsetMin: number };
    if (typeof a[1] === 'number') t = { date: new Date(a[1] * 1000), offsetMin: 0 };
    else t = parseRfc3339(str(a, 1, p), p);
    if (spec === 'X') return Math.floor(t.date.getTime() / 1000);
    return formatDate(spec, t.date, t.offsetMin, p);
  }));
  f.set('formatlist', fn([1, Infinity], (a, p) => {
    const fmt = str(a, 0, p);
    const rest = a.slice(1);
    const lens = rest.filter(Array.isArray).map((x) => (x as Value[]).length);
    if (lens.some((l) => l !== lens[0])) throw new Error('all list arguments must have the same length');
    const n = lens.length ? lens[0] : 1;
    return Array.from({ length: n }, (_x, i) => format(fmt, rest.map((x) => (Array.isArray(x) ? x[i] : x)), p));
  }));
  f.set('greaterthan', cmp((a, b) => a > b));
  f.set('greaterthanorequalto', cmp((a, b) => a >= b));
  f.set('hasindex', fn(2, (a, p) => {
    const c = a[0];
    if (Array.isArray(c)) { const i = toNum(a[1], p); return Number.isInteger(i) && i >= 0 && i < c.length; }
    if (isObject(c)) return toStr(a[1], p) in c;
    throw new HclError(p, `hasindex: a list or map is required, not a ${typeName(c)}`);
  }));
  f.set('homedir', fn(0, () => homedir()));
  f.set('indent', fn(2, (a, p) => { const pad = ' '.repeat(int(a, 0, p)); return str(a, 1, p).replace(/\n/g, `\n${pad}`); }));
  f.set('index', fn(2, (a, p) => new Evaluator(new Map()).index(a[0], a[1], p)));
  f.set('indexof', fn(2, (a, p) => {
    const l = list(a, 0, p);
    if (l.length === 0) throw new Error('cannot search an empty list');
    const i = l.findIndex((x) => equal(x, a[1]));
    if (i < 0) throw new Error('item not found');
    return i;
  }));
  f.set('int', fn(1, (a, p) => Math.trunc(num(a, 0, p))));
  f.set('join', fn([2, Infinity], (a, p) => a.slice(1).flatMap((x, i) => toList(x, p, `argument ${i + 2}`)).map((x) => toStr(x, p, 'a joined element')).join(str(a, 0, p))));
  f.set('jsondecode', str1((s) => { try { return fromJson(JSON.parse(s)); } catch (e) { throw new Error(`invalid JSON: ${(e as Error).message}`); } }));
  f.set('jsonencode', fn(1, (a, p) => JSON.stringify(jsonValue(a[0], p))));
  f.set('keys', fn(1, (a, p) => sortedKeys(map(a, 0, p))));
  f.set('length', fn(1, (a, p) => {
    const v = a[0];
    if (Array.isArray(v)) return v.length;
    if (isObject(v)) return Object.keys(v).length;
    throw new HclError(p, `length: collection must be a list, a map or a tuple, not a ${typeName(v)} (strlen() counts a string's characters)`);
  }));
  f.set('lessthan', cmp((a, b) => a < b));
  f.set('lessthanorequalto', cmp((a, b) => a <= b));
  f.set('log', num2((a, b) => Math.log(a) / Math.log(b)));
  // cty's lookup always takes the default (Terraform's two-argument form is not there).
  f.set('lookup', fn(3, (a, p) => {
    const m = map(a, 0, p), k = str(a, 1, p);
    return k in m ? m[k] : a[2];
  }));
  f.set('lower', str1((s) => s.toLowerCase()));
  f.set('max', fn([1, Infinity], (a, p) => Math.max(...a.map((x) => toNum(x, p)))));
  f.set('md5', hash('md5'));
  f.set('merge', fn([0, Infinity], (a, p) => obj(a.filter((x) => x !== null).flatMap((x, i) => {
    if (!isObject(x)) throw new HclError(p, `merge: argument ${i + 1} is a ${typeName(x)}; maps or objects are required`);
    return Object.entries(x);
  }))));
  f.set('min', fn([1, Infinity], (a, p) => Math.min(...a.map((x) => toNum(x, p)))));
  f.set('modulo', num2((a, b) => { if (b === 0) throw new Error('modulo by zero'); return a % b; }));
  f.set('multiply', num2((a, b) => a * b));
  f.set('negate', fn(1, (a, p) => -num(a, 0, p)));
  f.set('not', fn(1, (a, p) => !toBool(a[0], p)));
  f.set('notequal', fn(2, (a) => !equal(a[0], a[1])));
  f.set('or', fn(2, (a, p) => toBool(a[0], p) || toBool(a[1], p)));
  f.set('parseint', fn(2, (a, p) => {
    const s = str(a, 0, p), base = int(a, 1, p);
    if (base < 2 || base > 62) throw new Error('the base must be between 2 and 62');
    const digits = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'.slice(0, base);
    const body = s.replace(/^[+-]/, '');
    const cased = base <= 36 ? body.toLowerCase() : body;
    if (!body || [...cased].some((c) => !digits.includes(c))) throw new Error(`cannot parse "${s}" as a base ${base} integer`);
    const n = [...cased].reduce((acc, c) => acc * base + digits.indexOf(c), 0);
    return s.startsWith('-') ? -n : n;
  }));
  f.set('pow', num2((a, b) => a ** b));
  f.set('range', fn([1, 3], (a, p) => {
    const [start, end, step] = a.length === 1 ? [0, num(a, 0, p), 1] : [num(a, 0, p), num(a, 1, p), a.length === 3 ? num(a, 2, p) : (num(a, 1, p) >= num(a, 0, p) ? 1 : -1)];
    if (step === 0) throw new Error('the step must not be zero');
    if ((step > 0 && start > end) || (step < 0 && start < end)) throw new Error('the step moves away from the end');
    const out: Value[] = [];
    for (let x = start; step > 0 ? x < end : x > end; x += step) { out.push(x); if (out.length > 1024) throw new Error('more than 1024 values'); }
    return out;
  }));
  f.set('regex_replace', fn(3, (a, p) => str(a, 0, p).replace(goRegex(str(a, 1, p), p, 'g'), goReplacement(str(a, 2, p)))));
  f.set('regex', fn(2, (a, p) => {
    const m = goRegex(str(a, 0, p), p).exec(str(a, 1, p));
    if (!m) throw new Error('the pattern did not match');
    return regexResult(m);
  }));
  f.set('regexall', fn(2, (a, p) => [...str(a, 1, p).matchAll(goRegex(str(a, 0, p), p, 'g'))].map((m) => regexResult(m as RegExpExecArray))));
  f.set('replace', fn(3, (a, p) => {
    const s = str(a, 0, p), sub = str(a, 1, p), rep = str(a, 2, p);
    if (sub.length > 1 && sub.startsWith('/') && sub.endsWith('/')) return s.replace(goRegex(sub.slice(1, -1), p, 'g'), goReplacement(rep));
    return s.split(sub).join(rep);
  }));
  f.set('reverse', str1((s) => [...s].reverse().join('')));
  f.set('reverselist', fn(1, (a, p) => [...list(a, 0, p)].reverse()));
  f.set('rsadecrypt', fn(2, (a, p) => {
    try {
      return privateDecrypt({ key: createPrivateKey(str(a, 1, p)), padding: cryptoConstants.RSA_PKCS1_PADDING }, Buffer.from(str(a, 0, p), 'base64')).toString('utf8');
    } catch (e) { throw new Error(`cannot decrypt: ${(e as Error).message}`); }
  }));
  f.set('sanitize', str1((s) => [...s].map((c) => (/[A-Za-z0-9_-]/.test(c) ? c : '_')).join('')));
  f.set('semvercmp', fn(2, (a, p) => semverCheck(str(a, 0, p), str(a, 1, p), p)));
  f.set('sethaselement', fn(2, (a, p) => list(a, 0, p).some((x) => equal(x, a[1]))));
  const sets = (a: Value[], p: Pos) => a.map((x, i) => toList(x, p, `argument ${i + 1}`));
  f.set('setintersection', fn([1, Infinity], (a, p) => { const [first, ...rest] = sets(a, p); return distinctSorted(first.filter((x) => rest.every((r) => r.some((y) => equal(x, y))))); }));
  f.set('setsubtract', fn(2, (a, p) => { const [x, y] = sets(a, p); return distinctSorted(x.filter((v) => !y.some((w) => equal(v, w)))); }));
  f.set('setunion', fn([1, Infinity], (a, p) => distinctSorted(sets(a, p).flat())));
  f.set('setsymmetricdifference', fn([1, Infinity], (a, p) => {
    const all = sets(a, p).map(distinctSorted).flat();
    return distinctSorted(all.filter((x) => all.filter((y) => equal(x, y)).length % 2 === 1));
  }));
  f.set('setproduct', fn([1, Infinity], (a, p) => sets(a, p).reduce<Value[][]>((acc, s) => acc.flatMap((prefix) => s.map((x) => [...prefix, x])), [[]])));
  f.set('sha1', hash('sha1'));
  f.set('sha256', hash('sha256'));
  f.set('sha512', hash('sha512'));
  f.set('signum', fn(1, (a, p) => Math.sign(num(a, 0, p))));
  f.set('slice', fn(3, (a, p) => {
    const l = list(a, 0, p), s = int(a, 1, p), e = int(a, 2, p);
    if (s < 0 || e > l.length || s > e) throw new Error(`invalid slice indices ${s}, ${e} of a list of ${l.length}`);
    return l.slice(s, e);
  }));
  f.set('sort', fn(1, (a, p) => list(a, 0, p).map((x) => toStr(x, p, 'a sorted element')).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))));
  f.set('split', fn(2, (a, p) => str(a, 1, p).split(str(a, 0, p))));
  f.set('strlen', str1((s) => [...s].length));
  f.set('substr', fn(3, (a, p) => {
    const chars = [...str(a, 0, p)];
    let off = int(a, 1, p);
    let len = int(a, 2, p);
    if (off < 0) off += chars.length;
    if (off < 0 || off > chars.length) throw new Error('the offset is outside the string');
    if (len < 0) len = chars.length - off;
    return chars.slice(off, off + len).join('');
  }));
  f.set('subtract', num2((a, b) => a - b));
  f.set('timeadd', fn(2, (a, p) => timeadd(str(a, 0, p), str(a, 1, p), p)));
  f.set('timestamp', fn(0, () => new Date().toISOString().replace(/\.\d+Z$/, 'Z')));
  f.set('title', str1((s) => s.replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, pre: string, c: string) => pre + c.toUpperCase())));
  f.set('trim', fn(2, (a, p) => {
    const cut = new Set([...str(a, 1, p)]);
    const chars = [...str(a, 0, p)];
    let s = 0, e = chars.length;
    while (s < e && cut.has(chars[s])) s++;
    while (e > s && cut.has(chars[e - 1])) e--;
    return chars.slice(s, e).join('');
  }));
  f.set('trimprefix', fn(2, (a, p) => { const s = str(a, 0, p), x = str(a, 1, p); return s.startsWith(x) ? s.slice(x.length) : s; }));
  f.set('trimspace', str1((s) => s.trim()));
  f.set('trimsuffix', fn(2, (a, p) => { const s = str(a, 0, p), x = str(a, 1, p); return x && s.endsWith(x) ? s.slice(0, -x.length) : s; }));
  f.set('try', { lazy: true, call: (args: Expr[], scope: Scope, ev: Evaluator, pos: Pos) => {
    let last: unknown;
    for (const e of args) {
      try { return ev.eval(e, scope); } catch (err) { if (!(err instanceof HclError)) throw err; last = err; }
    }
    throw new HclError(pos, `try(): no expression succeeded${last instanceof HclError ? `; the last: ${last.detail}` : ''}`);
  } });
  f.set('unixtimestampparse', fn(1, (a, p) => {
    const n = int(a, 0, p);
    const d = new Date(n * 1000);
    const iso = isoWeek(d);
    return obj([
      ['year', d.getUTCFullYear()], ['year_day', Math.floor((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1],
      ['day', d.getUTCDate()], ['month', d.getUTCMonth() + 1], ['month_name', MONTHS[d.getUTCMonth()]],
      ['weekday', d.getUTCDay()], ['weekday_name', DAYS[d.getUTCDay()]],
      ['hour', d.getUTCHours()], ['minute', d.getUTCMinutes()], ['second', d.getUTCSeconds()],
      ['rfc3339', d.toISOString().replace(/\.\d+Z$/, 'Z')], ['iso_year', iso.year], ['iso_week', iso.week],
    ]);
  }));
  f.set('upper', str1((s) => s.toUpperCase()));
  // Go's url.QueryEscape: spaces as "+", and the few characters encodeURIComponent keeps escaped.
  f.set('urlencode', str1((s) => encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)));
  f.set('uuidv4', fn(0, () => randomUUID()));
  f.set('uuidv5', fn(2, (a, p) => uuidv5(str(a, 0, p), str(a, 1, p), p)));
  f.set('values', fn(1, (a, p) => { const m = map(a, 0, p); return sortedKeys(m).map((k) => m[k]); }));
  f.set('zipmap', fn(2, (a, p) => {
    const k = list(a, 0, p), v = list(a, 1, p);
    if (k.length !== v.length) throw new Error(`${k.length} keys but ${v.length} values`);
    return obj(k.map((x, i) => [toStr(x, p, 'a key'), v[i]]));
  }));
  return f;
}

function isoWeek(d: Date): { year: number; week: number } {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  return { year: t.getUTCFullYear(), week: Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7) };
}
