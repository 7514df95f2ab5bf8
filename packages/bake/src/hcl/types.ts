// Type constraints (`variable { type = list(string) }`, convert()) and cty's conversions to them.
import { HclError, type Expr, type Pos } from './ast.js';
import { formatNumber, isObject, obj, toBool, toNum, toStr, typeName, type Value } from './eval.js';

export type Type =
  | { k: 'string' | 'number' | 'bool' | 'any' }
  | { k: 'list' | 'set' | 'map'; elem: Type }
  | { k: 'tuple'; elems: Type[] }
  | { k: 'object'; attrs: Record<string, Type> };

export function parseType(e: Expr): Type {
  if (e.kind === 'var' && ['string', 'number', 'bool', 'any'].includes(e.name)) return { k: e.name as 'string' };
  if (e.kind === 'call' && ['list', 'set', 'map'].includes(e.name) && e.args.length === 1) return { k: e.name as 'list', elem: parseType(e.args[0]) };
  if (e.kind === 'call' && e.name === 'tuple' && e.args.length === 1 && e.args[0].kind === 'tuple') return { k: 'tuple', elems: e.args[0].items.map(parseType) };
  if (e.kind === 'call' && e.name === 'object' && e.args.length === 1 && e.args[0].kind === 'object') {
    const attrs: Record<string, Type> = {};
    for (const it of e.args[0].items) {
      const key = it.key.kind === 'literal' ? String(it.key.value) : it.key.kind === 'var' ? it.key.name : undefined;
      if (key === undefined) throw new HclError(it.key.pos, 'an object type\'s attribute names must be identifiers');
      attrs[key] = parseType(it.value);
    }
    return { k: 'object', attrs };
  }
  throw new HclError(e.pos, 'invalid type: use string, number, bool, any, list(T), set(T), map(T), tuple([...]) or object({...})');
}

export function typeString(t: Type): string {
  switch (t.k) {
    case 'list': case 'set': case 'map': return `${t.k}(${typeString(t.elem)})`;
    case 'tuple': return `tuple([${t.elems.map(typeString).join(', ')}])`;
    case 'object': return `object({${Object.entries(t.attrs).map(([k, v]) => `${k}=${typeString(v)}`).join(', ')}})`;
    default: return t.k;
  }
}

export function convert(v: Value, t: Type, pos: Pos, what = 'value'): Value {
  if (v === null || t.k === 'any') return v;
  switch (t.k) {
    case 'string': return toStr(v, pos, what);
    case 'number': return toNum(v, pos, what);
    case 'bool': return toBool(v, pos, what);
    case 'list': case 'set': {
      if (!Array.isArray(v)) throw new HclError(pos, `${what} is a ${typeName(v)}; ${typeString(t)} is required`);
      const out = v.map((x) => convert(x, t.elem, pos, what));
      if (t.k === 'list') return out;
      return distinctSorted(out);
    }
    case 'map': {
      if (!isObject(v)) throw new HclError(pos, `${what} is a ${typeName(v)}; ${typeString(t)} is required`);
      return obj(Object.entries(v).map(([k, x]) => [k, convert(x, t.elem, pos, what)]));
    }
    case 'tuple': {
      if (!Array.isArray(v) || v.length !== t.elems.length) throw new HclError(pos, `${what} must be a tuple of ${t.elems.length} elements`);
      return v.map((x, i) => convert(x, t.elems[i], pos, what));
    }
    case 'object': {
      if (!isObject(v)) throw new HclError(pos, `${what} is a ${typeName(v)}; ${typeString(t)} is required`);
      return obj(Object.entries(t.attrs).map(([k, at]) => {
        if (!(k in v)) throw new HclError(pos, `${what} has no attribute "${k}" that ${typeString(t)} requires`);
        return [k, convert(v[k], at, pos, what)];
      }));
    }
  }
}

/** A cty set's elements: distinct, in cty's order (strings lexically, numbers by value). */
export function distinctSorted(values: Value[]): Value[] {
  const seen = new Map<string, Value>();
  for (const v of values) seen.set(JSON.stringify(v), v);
  return [...seen.values()].sort((a, b) => {
    if (typeof a === 'number' && typeof b === 'number') return a - b;
    const x = typeof a === 'string' ? a : typeof a === 'number' ? formatNumber(a) : JSON.stringify(a);
    const y = typeof b === 'string' ? b : typeof b === 'number' ? formatNumber(b) : JSON.stringify(b);
    return x < y ? -1 : x > y ? 1 : 0;
  });
}
