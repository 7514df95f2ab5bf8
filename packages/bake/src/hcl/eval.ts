// Evaluates HCL expressions over cty-like values: strings, numbers, bools, null, tuples (JS
// arrays) and objects (null-prototype records). Conversions follow cty's: numbers and bools
// become strings where a string is wanted, numeric strings become numbers for arithmetic.
import { HclError, SPLAT_VAR, type Expr, type Pos, type TemplatePart } from './ast.js';

export type Value = string | number | boolean | null | Value[] | ObjectValue | Lazy;
export interface ObjectValue { [key: string]: Value }

/** A value computed when traversed (bake's `target.NAME.ATTR` references). */
export abstract class Lazy {
  abstract what: string;
  abstract attr(name: string, pos: Pos): Value;
}

export interface Scope {
  /** undefined: not defined here (the caller reports it). */
  lookup(name: string, pos: Pos): Value | undefined;
}

export type Fn =
  | { lazy?: false; call(args: Value[], pos: Pos): Value }
  | { lazy: true; call(args: Expr[], scope: Scope, ev: Evaluator, pos: Pos): Value };

export function obj(entries: Iterable<[string, Value]> = []): ObjectValue {
  const o = Object.create(null) as ObjectValue;
  for (const [k, v] of entries) o[k] = v;
  return o;
}

export function isObject(v: Value): v is ObjectValue {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Lazy);
}

export function typeName(v: Value): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'tuple';
  if (v instanceof Lazy) return v.what;
  if (typeof v === 'object') return 'object';
  return typeof v === 'boolean' ? 'bool' : typeof v;
}

/**
 * cty's number text: integers without exponent, other values in their shortest form. cty
 * computes in 512-bit decimal-friendly floats (0.1 + 0.2 is 0.3); rounding to 15 significant
 * digits gives the same text for such sums, where float64 would show 0.30000000000000004.
 */
export function formatNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return n.toFixed(0);
  const r = Number(n.toPrecision(15));
  return Number.isInteger(r) && Math.abs(r) < 1e21 ? r.toFixed(0) : String(r);
}

export function toStr(v: Value, pos: Pos, what = 'value'): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null) throw new HclError(pos, `${what} is null; a string is required here`);
  throw new HclError(pos, `${what} is a ${typeName(v)}; a string is required here`);
}

export function toNum(v: Value, pos: Pos, what = 'value'): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  throw new HclError(pos, `${what} ${v === null ? 'is null' : typeof v === 'string' ? `"${v.slice(0, 60)}" is not a number` : `is a ${typeName(v)}`}; a number is required here`);
}

export function toBool(v: Value, pos: Pos, what = 'value'): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 'true' || v === 'false') return v === 'true';
  throw new HclError(pos, `${what} ${v === null ? 'is null' : `is a ${typeName(v)}`}; a bool is required here`);
}

export function toList(v: Value, pos: Pos, what = 'value'): Value[] {
  if (Array.isArray(v)) return v;
  throw new HclError(pos, `${what} is a ${typeName(v)}; a list is required here`);
}

export function equal(a: Value, b: Value): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => equal(x, b[k]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => k in b && equal(a[k], b[k]));
  }
  return false;
}

/** Object keys in cty's order (lexical), as for-expressions and keys() see them. */
export function sortedKeys(o: ObjectValue): string[] {
  return Object.keys(o).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

/** Go's strconv.ParseBool, which buildx uses for environment and --set values. */
export function goParseBool(text: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  return undefined;
}

/** A parsed JSON value as an HCL value (objects without a prototype). */
export function fromJson(u: unknown): Value {
  if (Array.isArray(u)) return u.map(fromJson);
  if (u !== null && typeof u === 'object') return obj(Object.entries(u).map(([k, x]) => [k, fromJson(x)]));
  return u as Value;
}

/** RFC 4180 CSV rows (quoted fields, "" for a quote, CRLF or LF lines). */
export function csvRows(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = '', q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (q) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') q = false; else field += c;
    } else if (c === '"' && field === '') q = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n' || c === '\r') { if (c === '\r' && text[i + 1] === '\n') i++; row.push(field); rows.push(row); row = []; field = ''; }
    else field += c;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

export class ChildScope implements Scope {
  constructor(private readonly parent: Scope, private readonly vars: Map<string, Value>) {}
  lookup(name: string, pos: Pos): Value | undefined {
    return this.vars.has(name) ? this.vars.get(name)! : this.parent.lookup(name, pos);
  }
}

export class Evaluator {
  constructor(readonly functions: Map<string, Fn>, private readonly resolveFunction?: (name: string, pos: Pos) => Fn | undefined) {}

  eval(e: Expr, scope: Scope): Value {
    switch (e.kind) {
      case 'literal': return e.value as Value;
      case 'paren': return this.eval(e.e, scope);
      case 'template': return this.template(e.parts, scope, e.pos);
      case 'var': {
        const v = scope.lookup(e.name, e.pos);
        if (v === undefined) throw new HclError(e.pos, `unknown variable "${e.name}": define it with variable "${e.name}" { default = ... } or fix the name`);
        return v;
      }
      case 'getattr': return this.attr(this.eval(e.obj, scope), e.name, e.pos);
      case 'index': return this.index(this.eval(e.obj, scope), this.eval(e.key, scope), e.pos);
      case 'splat': {
        const base = this.eval(e.obj, scope);
        if (base === null) return [];
        const each = (x: Value) => this.eval(e.rest, new ChildScope(scope, new Map([[SPLAT_VAR, x]])));
        return Array.isArray(base) ? base.map(each) : [each(base)];
      }
      case 'call': return this.call(e, scope);
      case 'tuple': return e.items.map((x) => this.eval(x, scope));
      case 'object': {
        const o = obj();
        for (const it of e.items) {
          const k = this.eval(it.key, scope);
          o[toStr(k, it.key.pos, 'object key')] = this.eval(it.value, scope);
        }
        return o;
      }
      case 'for': return this.forExpr(e, scope);
      case 'cond': return toBool(this.eval(e.cond, scope), e.cond.pos, 'the condition') ? this.eval(e.a, scope) : this.eval(e.b, scope);
      case 'unary': {
        const v = this.eval(e.e, scope);
        return e.op === '!' ? !toBool(v, e.pos, 'the operand of !') : -toNum(v, e.pos, 'the operand of -');
      }
      case 'binary': return this.binary(e.op, e.l, e.r, scope, e.pos);
    }
  }

  private binary(op: string, le: Expr, re: Expr, scope: Scope, pos: Pos): Value {
    if (op === '&&' || op === '||') {
      const l = toBool(this.eval(le, scope), le.pos, `the left operand of ${op}`);
      const r = toBool(this.eval(re, scope), re.pos, `the right operand of ${op}`);
      return op === '&&' ? l && r : l || r;
    }
    const l = this.eval(le, scope);
    const r = this.eval(re, scope);
    if (op === '==') return equal(l, r);
    if (op === '!=') return !equal(l, r);
    const a = toNum(l, le.pos, `the left operand of ${op}`);
    const b = toNum(r, re.pos, `the right operand of ${op}`);
    switch (op) {
      case '+': return a + b;
      case '-': return a - b;
      case '*': return a * b;
      case '/':
        if (b === 0) throw new HclError(pos, 'division by zero');
        return a / b;
      case '%':
        if (b === 0) throw new HclError(pos, 'modulo by zero');
        return a % b;
      case '<': return a < b;
      case '>': return a > b;
      case '<=': return a <= b;
      case '>=': return a >= b;
    }
    throw new HclError(pos, `unknown operator ${op}`);
  }

  attr(v: Value, name: string, pos: Pos): Value {
    if (v instanceof Lazy) return v.attr(name, pos);
    if (isObject(v)) {
      if (!(name in v)) throw new HclError(pos, `unsupported attribute "${name}": this object has ${Object.keys(v).length ? Object.keys(v).slice(0, 10).join(', ') : 'no attributes'}`);
      return v[name];
    }
    throw new HclError(pos, `cannot read attribute "${name}" of a ${typeName(v)}`);
  }

  index(v: Value, k: Value, pos: Pos): Value {
    if (Array.isArray(v)) {
      const n = toNum(k, pos, 'the index');
      if (!Number.isInteger(n) || n < 0 || n >= v.length) throw new HclError(pos, `invalid index ${formatNumber(n)}: the list has ${v.length} element${v.length === 1 ? '' : 's'}`);
      return v[n];
    }
    if (v instanceof Lazy) return v.attr(toStr(k, pos, 'the key'), pos);
    if (isObject(v)) {
      const key = toStr(k, pos, 'the key');
      if (!(key in v)) throw new HclError(pos, `invalid index: the map has no element "${key}"`);
      return v[key];
    }
    throw new HclError(pos, `cannot index a ${typeName(v)}`);
  }

  private call(e: Expr & { kind: 'call' }, scope: Scope): Value {
    const fn = this.functions.get(e.name) ?? this.resolveFunction?.(e.name, e.pos);
    if (!fn) throw new HclError(e.pos, `call to unknown function "${e.name}": see buildx's bake function list, or define it with function "${e.name}" { params = [...] result = ... }`);
    if (fn.lazy) return fn.call(e.args, scope, this, e.pos);
    let args = e.args.map((a) => this.eval(a, scope));
    if (e.expandFinal) {
      const last = args[args.length - 1];
      args = [...args.slice(0, -1), ...toList(last, e.args[e.args.length - 1].pos, 'the argument expanded with ...')];
    }
    try {
      return fn.call(args, e.pos);
    } catch (err) {
      if (err instanceof HclError) throw err;
      throw new HclError(e.pos, `${e.name}(): ${(err as Error).message}`);
    }
  }

  private forExpr(e: Expr & { kind: 'for' }, scope: Scope): Value {
    const coll = this.eval(e.coll, scope);
    const pairs: [Value, Value][] = Array.isArray(coll) ? coll.map((v, k) => [k, v])
      : isObject(coll) ? sortedKeys(coll).map((k) => [k, coll[k]])
      : (() => { throw new HclError(e.coll.pos, `a for expression needs a list or an object, not a ${typeName(coll)}`); })();
    const outList: Value[] = [];
    const outObj = obj();
    for (const [k, v] of pairs) {
      const vars = new Map<string, Value>([[e.valVar, v]]);
      if (e.keyVar) vars.set(e.keyVar, k);
      const s = new ChildScope(scope, vars);
      if (e.cond && !toBool(this.eval(e.cond, s), e.cond.pos, 'the for expression\'s if')) continue;
      if (!e.object) { outList.push(this.eval(e.valExpr, s)); continue; }
      const key = toStr(this.eval(e.keyExpr!, s), e.keyExpr!.pos, 'the for expression\'s key');
      const val = this.eval(e.valExpr, s);
      if (e.group) {
        const cur = outObj[key];
        if (Array.isArray(cur)) cur.push(val);
        else outObj[key] = [val];
      } else {
        if (key in outObj) throw new HclError(e.pos, `duplicate key "${key}" in the for expression: add "..." after the value to group them`);
        outObj[key] = val;
      }
    }
    return e.object ? outObj : outList;
  }

  private template(parts: TemplatePart[], scope: Scope, pos: Pos): Value {
    // A template that is one interpolation yields the value itself, not its string.
    if (parts.length === 1 && typeof parts[0] !== 'string' && parts[0].kind === 'interp') return this.eval(parts[0].e, scope);
    return this.templateText(parts, scope, pos);
  }

  private templateText(parts: TemplatePart[], scope: Scope, pos: Pos): string {
    let out = '';
    for (const p of parts) {
      if (typeof p === 'string') { out += p; continue; }
      if (p.kind === 'interp') { out += toStr(this.eval(p.e, scope), p.e.pos, 'the interpolated value'); continue; }
      if (p.kind === 'if') {
        out += this.templateText(toBool(this.eval(p.cond, scope), p.pos, 'the %{if} condition') ? p.then : p.else, scope, pos);
        continue;
      }
      const coll = this.eval(p.coll, scope);
      const pairs: [Value, Value][] = Array.isArray(coll) ? coll.map((v, k) => [k, v]) : isObject(coll) ? sortedKeys(coll).map((k) => [k, coll[k]]) : [];
      if (!Array.isArray(coll) && !isObject(coll)) throw new HclError(p.pos, `%{for} needs a list or an object, not a ${typeName(coll)}`);
      for (const [k, v] of pairs) {
        const vars = new Map<string, Value>([[p.valVar, v]]);
        if (p.keyVar) vars.set(p.keyVar, k);
        out += this.templateText(p.body, new ChildScope(scope, vars), pos);
      }
    }
    return out;
  }
}
