// HCL's JSON syntax (docker-bake.json): object properties become attributes or blocks by the
// bake schema (variable, function, target and group blocks take one label); strings are
// templates, as HCL evaluates them. A small JSON reader of our own keeps each value's line.
import { HclError, type Body, type Expr, type Pos } from './ast.js';
import { parseTemplateString } from './parse.js';

type JNode =
  | { t: 'obj'; pos: Pos; props: { key: string; pos: Pos; value: JNode }[] }
  | { t: 'arr'; pos: Pos; items: JNode[] }
  | { t: 'str'; pos: Pos; value: string }
  | { t: 'lit'; pos: Pos; value: number | boolean | null };

const LABELLED = new Set(['variable', 'function', 'target', 'group']);

export function parseHclJson(src: string, file: string): Body {
  const root = readJson(src, file);
  if (root.t !== 'obj') throw new HclError(root.pos, 'a bake JSON file must hold one object');
  return toBody(root, true);
}

function toBody(o: JNode & { t: 'obj' }, top: boolean, blockType?: string): Body {
  const body: Body = { attributes: [], blocks: [] };
  for (const p of o.props) {
    if (top && LABELLED.has(p.key)) {
      if (p.value.t !== 'obj') throw new HclError(p.pos, `"${p.key}" must be an object of named ${p.key} blocks`);
      for (const b of p.value.props) {
        const list = b.value.t === 'arr' ? b.value.items : [b.value];
        for (const one of list) {
          if (one.t !== 'obj') throw new HclError(b.pos, `${p.key} "${b.key}" must be an object`);
          body.blocks.push({ type: p.key, labels: [b.key], body: toBody(one, false, p.key), pos: b.pos });
        }
      }
      continue;
    }
    if (blockType === 'variable' && p.key === 'validation') {
      const list = p.value.t === 'arr' ? p.value.items : [p.value];
      for (const one of list) {
        if (one.t !== 'obj') throw new HclError(p.pos, 'a validation must be an object');
        body.blocks.push({ type: 'validation', labels: [], body: toBody(one, false), pos: p.pos });
      }
      continue;
    }
    body.attributes.push({ name: p.key, expr: toExpr(p.value), pos: p.pos });
  }
  return body;
}

function toExpr(n: JNode): Expr {
  switch (n.t) {
    case 'str': return parseTemplateString(n.value, n.pos);
    case 'lit': return { kind: 'literal', pos: n.pos, value: n.value };
    case 'arr': return { kind: 'tuple', pos: n.pos, items: n.items.map(toExpr) };
    case 'obj': return { kind: 'object', pos: n.pos, items: n.props.map((p) => ({ key: { kind: 'literal', pos: p.pos, value: p.key } as Expr, value: toExpr(p.value) })) };
  }
}

function readJson(src: string, file: string): JNode {
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const pos = (): Pos => ({ file, line, col: i - lineStart + 1 });
  const fail = (msg: string): never => { throw new HclError(pos(), msg); };
  const ws = () => {
    while (i < src.length && /[ \t\r\n]/.test(src[i])) {
      if (src[i] === '\n') { line++; lineStart = i + 1; }
      i++;
    }
  };
  const str = (): string => {
    const start = i;
    i++;
    let out = '';
    for (;;) {
      const c = src[i];
      if (c === undefined || c === '\n') fail('unterminated JSON string');
      if (c === '"') { i++; break; }
      if (c === '\\') {
        const end = src[i + 1] === 'u' ? i + 6 : i + 2;
        out += JSON.parse(`"${src.slice(i, end)}"`) as string;
        i = end;
        continue;
      }
      out += c;
      i++;
    }
    void start;
    return out;
  };
  const value = (): JNode => {
    ws();
    const p = pos();
    const c = src[i];
    if (c === '{') {
      i++;
      const props: { key: string; pos: Pos; value: JNode }[] = [];
      ws();
      if (src[i] === '}') { i++; return { t: 'obj', pos: p, props }; }
      for (;;) {
        ws();
        const kp = pos();
        if (src[i] !== '"') fail('expected a quoted property name');
        const key = str();
        ws();
        if (src[i] !== ':') fail('expected ":" after the property name');
        i++;
        props.push({ key, pos: kp, value: value() });
        ws();
        if (src[i] === ',') { i++; continue; }
        if (src[i] === '}') { i++; return { t: 'obj', pos: p, props }; }
        fail('expected "," or "}" in the object');
      }
    }
    if (c === '[') {
      i++;
      const items: JNode[] = [];
      ws();
      if (src[i] === ']') { i++; return { t: 'arr', pos: p, items }; }
      for (;;) {
        items.push(value());
        ws();
        if (src[i] === ',') { i++; continue; }
        if (src[i] === ']') { i++; return { t: 'arr', pos: p, items }; }
        fail('expected "," or "]" in the array');
      }
    }
    if (c === '"') return { t: 'str', pos: p, value: str() };
    const m = /^(true|false|null|-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)/.exec(src.slice(i));
    if (!m) fail(`unexpected ${c === undefined ? 'end of file' : `"${c}"`} in JSON`);
    i += m![0].length;
    const v = m![0] === 'true' ? true : m![0] === 'false' ? false : m![0] === 'null' ? null : Number(m![0]);
    return { t: 'lit', pos: p, value: v };
  };
  const root = value();
  ws();
  if (i < src.length) fail('unexpected text after the JSON value');
  return root;
}
