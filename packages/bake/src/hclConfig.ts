// Evaluates parsed bake HCL into targets and groups, as buildx's hclparser: variables (defaults,
// env overrides, types, validation), top-level attributes, user functions, `target.NAME.ATTR`
// references, and `matrix` targets, all resolved lazily in any order with cycle detection.
import { HclError, asKeyword, type Block, type Body, type Expr, type Pos } from './hcl/ast.js';
import { ChildScope, Evaluator, Lazy, csvRows, fromJson, goParseBool, isObject, obj, toBool, toStr, typeName, type Fn, type Scope, type Value } from './hcl/eval.js';
import { stdlib } from './hcl/stdlib.js';
import { convert, parseType, typeString, type Type } from './hcl/types.js';
import { TARGET_FIELDS, mergeTarget, type Config, type Group, type Target } from './target.js';

export interface HclOptions {
  /** Environment lookup for variable overrides. */
  env: Record<string, string | undefined>;
  /** Built-in variables (BAKE_CMD_CONTEXT, BAKE_LOCAL_PLATFORM), not overridable. */
  builtins: Record<string, string>;
}

export const TARGET_NAME = /^[a-zA-Z0-9_-]+$/;
const BLOCK_TYPES = new Set(['target', 'group']);
const TARGET_EXTRA = new Set(['name', 'matrix']);
const GROUP_FIELDS = new Set(['targets', 'description']);

interface Instance {
  block: Block;
  scope: Scope;
  name: string;
  values: Map<string, Value>;
  inProgress: Set<string>;
}

/** What a matrix renamed: a block label to the names of its instances. */
export type Renamed = Map<string, string[]>;

export function evaluateHcl(bodies: Body[], opt: HclOptions): { config: Config; renamed: Renamed } {
  return new HclConfig(bodies, opt).run();
}

class HclConfig implements Scope {
  private readonly attrs = new Map<string, { expr: Expr; pos: Pos }>();
  private readonly vars = new Map<string, Block>();
  private readonly funcs = new Map<string, Block>();
  private readonly blocks: Block[] = [];
  private readonly values = new Map<string, Value>();
  private readonly progress = new Set<string>();
  private readonly userFns = new Map<string, Fn>();
  private readonly ev: Evaluator;
  private instances = new Map<Block, Instance[]>();
  private readonly byName = new Map<string, Map<string, Instance[]>>([['target', new Map()], ['group', new Map()]]);
  private callDepth = 0;

  constructor(bodies: Body[], private readonly opt: HclOptions) {
    this.ev = new Evaluator(stdlib(), (name, pos) => this.userFunction(name, pos));
    for (const body of bodies) {
      for (const a of body.attributes) {
        if (BLOCK_TYPES.has(a.name) || Object.hasOwn(opt.builtins, a.name) || a.name === 'function') continue;
        this.attrs.set(a.name, { expr: a.expr, pos: a.pos });
      }
      for (const b of body.blocks) {
        if (b.type === 'variable' || b.type === 'function') {
          if (b.labels.length !== 1) throw new HclError(b.pos, `a ${b.type} block takes one name: ${b.type} "NAME" { ... }`);
          if (Object.hasOwn(opt.builtins, b.labels[0])) continue;
          (b.type === 'variable' ? this.vars : this.funcs).set(b.labels[0], b);
        } else if (BLOCK_TYPES.has(b.type)) {
          if (b.labels.length !== 1) throw new HclError(b.pos, `a ${b.type} block takes one name: ${b.type} "NAME" { ... }`);
          this.blocks.push(b);
        } else {
          throw new HclError(b.pos, `unknown block type "${b.type}": bake files hold variable, function, target and group blocks`);
        }
      }
    }
  }

  run(): { config: Config; renamed: Renamed } {
    for (const name of this.vars.keys()) this.value(name, this.vars.get(name)!.pos);
    for (const [name, b] of this.vars) this.validate(name, b);
    for (const name of this.funcs.keys()) this.userFunction(name, this.funcs.get(name)!.pos);
    // Names first (a matrix and `name` may read variables), so `target.NAME` references resolve.
    const renamed: Renamed = new Map();
    for (const b of this.blocks) {
      const list = this.instancesOf(b);
      const seen = new Set<string>();
      for (const inst of list) {
        if (seen.has(inst.name)) throw new HclError(b.pos, `duplicate name "${inst.name}" from the matrix of ${b.type} "${b.labels[0]}": make its name attribute differ per combination`);
        seen.add(inst.name);
        const m = this.byName.get(b.type)!;
        m.set(inst.name, [...(m.get(inst.name) ?? []), inst]);
      }
      if (b.type === 'target') renamed.set(b.labels[0], [...new Set([...(renamed.get(b.labels[0]) ?? []), ...list.map((i) => i.name)])]);
    }
    const config: Config = { groups: [], targets: [] };
    for (const b of this.blocks) {
      for (const inst of this.instances.get(b)!) {
        if (b.type === 'group') {
          const g = this.decodeGroup(inst);
          const i = config.groups.findIndex((x) => x.name === g.name);
          if (i >= 0) config.groups[i] = g; else config.groups.push(g);
        } else {
          const t = this.decodeTarget(inst);
          const prev = config.targets.find((x) => x.name === t.name);
          if (prev) mergeTarget(prev, t); else config.targets.push(t);
        }
      }
    }
    for (const [name, a] of this.attrs) this.value(name, a.pos);
    return { config, renamed };
  }

  lookup(name: string, pos: Pos): Value | undefined {
    if (name === 'target' || name === 'group') return new BlockSet(this, name);
    if (Object.hasOwn(this.opt.builtins, name) || this.attrs.has(name) || this.vars.has(name)) return this.value(name, pos);
    return undefined;
  }

  private value(name: string, pos: Pos): Value {
    if (this.values.has(name)) return this.values.get(name)!;
    if (this.progress.has(name)) throw new HclError(pos, `variable cycle not allowed for ${name}: break the loop between the variables`);
    this.progress.add(name);
    const v = this.computeValue(name);
    this.values.set(name, v);
    return v;
  }

  private computeValue(name: string): Value {
    if (Object.hasOwn(this.opt.builtins, name)) return this.opt.builtins[name];
    const attr = this.attrs.get(name);
    if (attr) return this.ev.eval(attr.expr, this);
    const block = this.vars.get(name)!;
    const body = block.body;
    for (const a of body.attributes) {
      if (!['default', 'type', 'description'].includes(a.name)) throw new HclError(a.pos, `unknown variable attribute "${a.name}": use default, type, description or a validation block`);
    }
    const typeAttr = body.attributes.find((a) => a.name === 'type');
    let type: Type | undefined;
    if (typeAttr && !(typeAttr.expr.kind === 'literal' && typeAttr.expr.value === null)) {
      type = parseType(typeAttr.expr);
    }
    const def = body.attributes.find((a) => a.name === 'default');
    let v: Value = def ? this.ev.eval(def.expr, this) : type ? null : '';
    if (def && type) v = convert(v, type, def.pos, `the default of variable "${name}"`);
    const override = this.override(name, !!type);
    if (override === undefined) return v;
    const where = block.pos;
    const { text, json } = override;
    if (type && json) {
      let parsed: unknown;
      try { parsed = JSON.parse(text); } catch { throw new HclError(where, `variable "${name}": ${name}_JSON is not valid JSON; fix the environment variable`); }
      return convert(fromJson(parsed), type, where, `${name}_JSON`);
    }
    if (type && ['list', 'set', 'tuple', 'map'].includes(type.k)) return convert(csvValue(text, type), type, where, `the ${name} environment variable`);
    if (type && ['string', 'number', 'bool'].includes(type.k)) return primitive(name, text, type.k as 'string', where);
    if (type && type.k !== 'any') throw new HclError(where, `variable "${name}" of type ${typeString(type)} can only be set from the environment as JSON: set ${name}_JSON`);
    if (!def || v === null || typeof v === 'string') return text;
    if (typeof v === 'boolean') return primitive(name, text, 'bool', where);
    if (typeof v === 'number') return primitive(name, text, 'number', where);
    throw new HclError(where, `variable "${name}" has a ${typeName(v)} default, which the environment cannot override: give it a type and set ${name}_JSON`);
  }

  private override(name: string, typed: boolean): { text: string; json: boolean } | undefined {
    const env = (k: string) => (Object.hasOwn(this.opt.env, k) ? this.opt.env[k] : undefined);
    const plain = env(name);
    if (plain !== undefined && !typed) return { text: plain, json: false };
    const jsonName = `${name}_JSON`;
    if (!this.vars.has(jsonName) && !Object.hasOwn(this.opt.builtins, jsonName)) {
      const j = env(jsonName);
      if (j !== undefined) return { text: j, json: true };
    }
    return plain !== undefined ? { text: plain, json: false } : undefined;
  }

  private validate(name: string, b: Block): void {
    for (const v of b.body.blocks) {
      if (v.type !== 'validation') throw new HclError(v.pos, `unknown block "${v.type}" in variable "${name}": only validation blocks go there`);
      const cond = v.body.attributes.find((a) => a.name === 'condition');
      const msg = v.body.attributes.find((a) => a.name === 'error_message');
      if (!cond) throw new HclError(v.pos, `the validation of variable "${name}" needs a condition`);
      const ok = this.ev.eval(cond.expr, this);
      if (ok === null) throw new HclError(cond.pos, 'the validation condition is null; it must be true or false');
      if (!toBool(ok, cond.pos, 'the validation condition')) {
        const text = msg ? this.ev.eval(msg.expr, this) : null;
        throw new HclError(cond.pos, `variable "${name}": ${text === null ? 'this check failed, but has an invalid error message' : toStr(text, msg!.pos)}`);
      }
    }
  }

  private userFunction(name: string, _pos: Pos): Fn | undefined {
    const existing = this.userFns.get(name);
    if (existing) return existing;
    const b = this.funcs.get(name);
    if (!b) return undefined;
    const params = b.body.attributes.find((a) => a.name === 'params');
    const variadic = b.body.attributes.find((a) => a.name === 'variadic_params');
    const result = b.body.attributes.find((a) => a.name === 'result');
    if (!params) throw new HclError(b.pos, `function "${name}" has no params: add params = [...] (may be empty)`);
    if (!result) throw new HclError(b.pos, `function "${name}" has no result: add result = EXPR`);
    if (params.expr.kind !== 'tuple') throw new HclError(params.pos, `params of function "${name}" must be a list of names`);
    const names = params.expr.items.map((e) => {
      const k = asKeyword(e);
      if (!k) throw new HclError(e.pos, 'each parameter name must be an identifier');
      return k;
    });
    const rest = variadic ? asKeyword(variadic.expr) : undefined;
    if (variadic && !rest) throw new HclError(variadic.pos, 'variadic_params must be an identifier');
    const fn: Fn = {
      call: (args, pos) => {
        if (args.length < names.length || (!rest && args.length > names.length)) {
          throw new HclError(pos, `${name}() takes ${rest ? `at least ${names.length}` : names.length} argument${names.length === 1 ? '' : 's'}, ${args.length} given`);
        }
        if (this.callDepth > 64) throw new HclError(pos, `${name}(): calls nest more than 64 deep; a function may not call itself`);
        const vars = new Map<string, Value>(names.map((n, i) => [n, args[i]]));
        if (rest) vars.set(rest, args.slice(names.length));
        this.callDepth++;
        try {
          return this.ev.eval(result.expr, new ChildScope(this, vars));
        } finally {
          this.callDepth--;
        }
      },
    };
    this.userFns.set(name, fn);
    return fn;
  }

  /** The evaluated instances of a block: one, or one per matrix combination. */
  instancesOf(b: Block): Instance[] {
    const have = this.instances.get(b);
    if (have) return have;
    const matrix = b.body.attributes.find((a) => a.name === 'matrix');
    const nameAttr = b.body.attributes.find((a) => a.name === 'name');
    if (b.type === 'group' && (matrix || nameAttr)) throw new HclError((matrix ?? nameAttr)!.pos, `${matrix ? 'matrix' : 'name'} is not supported for groups`);
    if (nameAttr && !matrix) throw new HclError(nameAttr.pos, `name requires matrix: drop name, or add a matrix to target "${b.labels[0]}"`);
    if (!TARGET_NAME.test(b.labels[0])) throw new HclError(b.pos, `invalid ${b.type} name "${b.labels[0]}": only [a-zA-Z0-9_-]+ are allowed`);
    let scopes: Scope[] = [this];
    if (matrix) {
      const m = this.ev.eval(matrix.expr, this);
      if (!isObject(m)) throw new HclError(matrix.pos, 'matrix must be a map of lists');
      // buildx combines the keys in the map's (sorted) order, the first key varying fastest.
      let combos: Map<string, Value>[] = [new Map()];
      for (const key of Object.keys(m).sort()) {
        const vals = m[key];
        if (!Array.isArray(vals)) throw new HclError(matrix.pos, `matrix values must be a list: ${key} is a ${typeName(vals)}`);
        const next: Map<string, Value>[] = [];
        for (const v of vals) for (const c of combos) next.push(new Map([...c, [key, v]]));
        combos = next;
      }
      scopes = combos.map((c) => new ChildScope(this, c));
    }
    const list = scopes.map((scope) => {
      let name = b.labels[0];
      if (nameAttr) {
        name = toStr(this.ev.eval(nameAttr.expr, scope), nameAttr.pos, 'the target name');
        if (!TARGET_NAME.test(name)) throw new HclError(nameAttr.pos, `invalid target name "${name}" from the matrix: only [a-zA-Z0-9_-]+ are allowed (sanitize() makes one)`);
      }
      return { block: b, scope, name, values: new Map(), inProgress: new Set<string>() } satisfies Instance;
    });
    this.instances.set(b, list);
    return list;
  }

  /** One attribute of one instance, evaluated once. */
  attribute(inst: Instance, name: string, pos: Pos): Value {
    if (inst.values.has(name)) return inst.values.get(name)!;
    const a = inst.block.body.attributes.find((x) => x.name === name);
    if (!a) return null;
    if (inst.inProgress.has(name)) throw new HclError(pos, `reference cycle not allowed for ${inst.block.type}.${inst.name}.${name}`);
    inst.inProgress.add(name);
    const v = this.ev.eval(a.expr, inst.scope);
    inst.inProgress.delete(name);
    inst.values.set(name, v);
    return v;
  }

  named(type: string, name: string): Instance[] | undefined {
    return this.byName.get(type)!.get(name);
  }

  private decodeGroup(inst: Instance): Group {
    for (const a of inst.block.body.attributes) if (!GROUP_FIELDS.has(a.name)) throw new HclError(a.pos, `unknown group attribute "${a.name}": a group has targets and description`);
    if (inst.block.body.blocks.length) throw new HclError(inst.block.body.blocks[0].pos, 'a group holds no blocks');
    const targetsAttr = inst.block.body.attributes.find((a) => a.name === 'targets');
    if (!targetsAttr) throw new HclError(inst.block.pos, `group "${inst.name}" has no targets: add targets = ["..."]`);
    const g: Group = { name: inst.name, targets: stringList(this.attribute(inst, 'targets', targetsAttr.pos), targetsAttr.pos, 'targets') ?? [] };
    const d = inst.block.body.attributes.find((a) => a.name === 'description');
    if (d) { const v = this.attribute(inst, 'description', d.pos); if (v !== null) g.description = toStr(v, d.pos, 'description'); }
    return g;
  }

  private decodeTarget(inst: Instance): Target {
    const t: Target = { name: inst.name };
    const f = t as unknown as Record<string, unknown>;
    if (inst.block.body.blocks.length) throw new HclError(inst.block.body.blocks[0].pos, `unknown block "${inst.block.body.blocks[0].type}" in target "${inst.name}": targets hold attributes only`);
    for (const a of inst.block.body.attributes) {
      if (TARGET_EXTRA.has(a.name)) continue;
      const kind = Object.hasOwn(TARGET_FIELDS, a.name) ? TARGET_FIELDS[a.name] : undefined;
      if (!kind) throw new HclError(a.pos, `unknown target attribute "${a.name}": see the bake file reference for the attributes a target takes`);
      const v = this.attribute(inst, a.name, a.pos);
      if (v === null) continue;
      if (kind === 'string') f[a.name] = toStr(v, a.pos, a.name);
      else if (kind === 'bool') f[a.name] = toBool(v, a.pos, a.name);
      else if (kind === 'list') f[a.name] = stringList(v, a.pos, a.name);
      else {
        if (!isObject(v)) throw new HclError(a.pos, `${a.name} is a ${typeName(v)}; a map is required, e.g. ${a.name} = { KEY = "value" }`);
        // No prototype: a key such as __proto__ is a key like any other.
        const m = Object.create(null) as Record<string, string | null>;
        for (const [k, x] of Object.entries(v)) {
          if (x === null && a.name === 'contexts') throw new HclError(a.pos, `contexts.${k} is null; a string is required`);
          m[k] = x === null ? null : toStr(x, a.pos, `${a.name}.${k}`);
        }
        f[a.name] = m;
      }
    }
    return t;
  }
}

/** `target` and `group` as values: `target.NAME.ATTR` reads (and evaluates) that attribute. */
class BlockSet extends Lazy {
  readonly what: string;
  constructor(private readonly cfg: HclConfig, private readonly type: string) { super(); this.what = type; }
  attr(name: string, pos: Pos): Value {
    const list = this.cfg.named(this.type, name);
    if (!list) throw new HclError(pos, `unknown ${this.type} "${name}" in ${this.type}.${name}`);
    return new BlockRef(this.cfg, this.type, list[list.length - 1]);
  }
}

class BlockRef extends Lazy {
  readonly what: string;
  constructor(private readonly cfg: HclConfig, type: string, private readonly inst: Instance) { super(); this.what = `${type} ${inst.name}`; }
  attr(name: string, pos: Pos): Value {
    const fields = this.inst.block.type === 'target' ? Object.keys(TARGET_FIELDS) : [...GROUP_FIELDS];
    if (!fields.includes(name)) throw new HclError(pos, `unsupported attribute "${name}" of ${this.what}`);
    return this.cfg.attribute(this.inst, name, pos);
  }
}

function stringList(v: Value, pos: Pos, what: string): string[] | undefined {
  if (v === null) return undefined;
  if (!Array.isArray(v)) throw new HclError(pos, `${what} is a ${typeName(v)}; a list of strings is required, e.g. ${what} = ["..."]`);
  return v.map((x, i) => toStr(x, pos, `${what}[${i}]`));
}


/** Go's strconv.ParseBool / ParseFloat for an environment override. */
function primitive(name: string, text: string, kind: 'string' | 'number' | 'bool', pos: Pos): Value {
  if (kind === 'string') return text;
  if (kind === 'bool') {
    const b = goParseBool(text);
    if (b !== undefined) return b;
    throw new HclError(pos, `failed to parse ${name} as bool: "${text.slice(0, 60)}"; use true or false`);
  }
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new HclError(pos, `failed to parse ${name} as number: "${text.slice(0, 60)}"`);
  return n;
}

/** A list/set/tuple from CSV fields, a map from key=value fields (buildx's valueFromCSV). */
function csvValue(text: string, type: Type): Value {
  const fields = csvRows(text)[0] ?? [''];
  if (type.k === 'map') return obj(fields.filter((x) => x !== '').map((x) => { const i = x.indexOf('='); return i < 0 ? [x, ''] : [x.slice(0, i), x.slice(i + 1)]; }));
  return fields;
}
