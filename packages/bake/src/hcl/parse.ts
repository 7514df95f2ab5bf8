// HCL native syntax (hashicorp/hcl v2 hclsyntax): bodies, blocks, attributes and the full
// expression language (templates with interpolation and %{if}/%{for} directives, heredocs,
// for-expressions, splats, conditionals, operators, function calls with `...`).
//
// Why our own parser: the npm packages that read HCL2 (@cdktf/hcl2json, hcl2-parser, both Go's
// hcl compiled to wasm/GopherJS, and @evops/hcl-terraform-parser) only turn HCL into JSON and
// leave every expression as a "${...}" string: evaluating variables, functions, for-expressions
// and templates would still need an HCL expression parser, and their JSON loses the line numbers
// our one-line errors quote. (cdktf, the maintained one, was also sunset by HashiCorp in 2025.)
import { HclError, SPLAT_VAR, type Attribute, type Block, type Body, type Expr, type Pos, type TemplatePart } from './ast.js';

const ID_START = /[A-Za-z_]/;
const ID_CHAR = /[A-Za-z0-9_-]/;

export function parseHcl(src: string, file: string): Body {
  const p = new Parser(src, file);
  const body = p.body(true);
  return body;
}

/** Parses one template (the text of a JSON-syntax string) into parts. */
export function parseTemplateString(src: string, pos: Pos): Expr {
  const p = new Parser(src, pos.file, pos.line - 1);
  const parts = p.templateParts('eof');
  return { kind: 'template', pos, parts };
}

/** Parses one expression (a JSON-syntax key written as an expression, or --set values). */
export function parseExpression(src: string, pos: Pos): Expr {
  const p = new Parser(src, pos.file, pos.line - 1);
  p.nl.push(true);
  const e = p.expr();
  p.skip();
  if (!p.eof()) p.fail(`unexpected "${p.src[p.i]}" after the expression`);
  return e;
}

type Strip = { before: boolean; after: boolean };
type Raw = string | { kind: 'interp'; e: Expr; strip: Strip } | { kind: 'dir'; word: string; pos: Pos; strip: Strip; keyVar?: string; valVar?: string; e?: Expr };

class Parser {
  i = 0;
  /** Top: whether newlines are whitespace here (inside (), [], ${}) or end things (bodies, objects). */
  readonly nl: boolean[] = [false];
  private readonly lineStarts: number[] = [0];

  constructor(readonly src: string, readonly file: string, private readonly lineOffset = 0) {
    for (let k = 0; k < src.length; k++) if (src[k] === '\n') this.lineStarts.push(k + 1);
  }

  pos(at = this.i): Pos {
    let lo = 0, hi = this.lineStarts.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (this.lineStarts[mid] <= at) lo = mid; else hi = mid - 1; }
    return { file: this.file, line: lo + 1 + this.lineOffset, col: at - this.lineStarts[lo] + 1 };
  }

  fail(msg: string, at = this.i): never { throw new HclError(this.pos(at), msg); }
  eof(): boolean { return this.i >= this.src.length; }
  peek(s: string): boolean { return this.src.startsWith(s, this.i); }

  /** Skips blanks and comments; newlines too where the context makes them whitespace. */
  skip(newlines = this.nl[this.nl.length - 1]): void {
    const s = this.src;
    for (;;) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\r') { this.i++; continue; }
      if (c === '\n' && newlines) { this.i++; continue; }
      if (c === '#' || (c === '/' && s[this.i + 1] === '/')) {
        while (this.i < s.length && s[this.i] !== '\n') this.i++;
        continue;
      }
      if (c === '/' && s[this.i + 1] === '*') {
        const end = s.indexOf('*/', this.i + 2);
        if (end < 0) this.fail('unterminated /* comment');
        this.i = end + 2;
        continue;
      }
      return;
    }
  }

  expect(tok: string, what?: string): void {
    this.skip();
    if (!this.peek(tok)) this.fail(`expected "${tok}"${what ? ` ${what}` : ''}, found ${this.describeHere()}`);
    this.i += tok.length;
  }

  describeHere(): string {
    if (this.eof()) return 'end of file';
    if (this.src[this.i] === '\n') return 'end of line';
    return `"${this.src.slice(this.i, this.i + 12).split('\n')[0]}"`;
  }

  ident(): string | undefined {
    if (!ID_START.test(this.src[this.i] ?? '')) return undefined;
    const start = this.i;
    while (this.i < this.src.length && ID_CHAR.test(this.src[this.i])) this.i++;
    return this.src.slice(start, this.i);
  }

  body(top: boolean): Body {
    const body: Body = { attributes: [], blocks: [] };
    for (;;) {
      this.skip(true);
      if (this.eof()) {
        if (!top) this.fail('unclosed block: expected "}"');
        return body;
      }
      if (this.src[this.i] === '}') {
        if (top) this.fail('unexpected "}"');
        this.i++;
        return body;
      }
      const at = this.i;
      const name = this.ident();
      if (name === undefined) this.fail(`expected an attribute or block name, found ${this.describeHere()}`);
      this.skip(false);
      if (this.peek('=') && !this.peek('==')) {
        this.i++;
        const expr = this.expr();
        this.endOfItem();
        if (body.attributes.some((a) => a.name === name)) this.fail(`attribute "${name}" is set twice in this body; keep one`, at);
        body.attributes.push({ name, expr, pos: this.pos(at) } satisfies Attribute);
        continue;
      }
      const labels: string[] = [];
      for (;;) {
        this.skip(false);
        if (this.peek('"')) {
          const lpos = this.i;
          const t = this.quoted();
          if (t.parts.some((x) => typeof x !== 'string')) this.fail('a block label cannot hold an interpolation', lpos);
          labels.push(t.parts.join(''));
        } else if (this.peek('{')) {
          break;
        } else {
          const l = this.ident();
          if (l === undefined) this.fail(`expected "=" or a block after "${name}", found ${this.describeHere()}`);
          labels.push(l);
        }
      }
      this.i++; // {
      this.nl.push(false);
      const inner = this.body(false);
      this.nl.pop();
      this.endOfItem();
      body.blocks.push({ type: name, labels, body: inner, pos: this.pos(at) } satisfies Block);
    }
  }

  private endOfItem(): void {
    this.skip(false);
    if (this.eof() || this.src[this.i] === '\n' || this.src[this.i] === '}') return;
    this.fail(`expected a new line after this item, found ${this.describeHere()}`);
  }

  expr(): Expr {
    const cond = this.binary(0);
    this.skip();
    if (this.peek('?')) {
      this.i++;
      const a = this.expr();
      this.expect(':', 'in the conditional');
      const b = this.expr();
      return { kind: 'cond', pos: cond.pos, cond, a, b };
    }
    return cond;
  }

  private static readonly LEVELS: string[][] = [['||'], ['&&'], ['==', '!='], ['>=', '<=', '>', '<'], ['+', '-'], ['*', '/', '%']];

  binary(level: number): Expr {
    if (level >= Parser.LEVELS.length) return this.unary();
    let l = this.binary(level + 1);
    for (;;) {
      this.skip();
      const op = Parser.LEVELS[level].find((o) => this.peek(o) && !(o === '>' && this.peek('>=')) && !(o === '<' && this.peek('<=')) && !(o === '<' && this.peek('<<')));
      if (!op) return l;
      this.i += op.length;
      const r = this.binary(level + 1);
      l = { kind: 'binary', pos: l.pos, op, l, r };
    }
  }

  unary(): Expr {
    this.skip();
    const at = this.pos();
    if (this.peek('!')) { this.i++; return { kind: 'unary', pos: at, op: '!', e: this.unary() }; }
    if (this.peek('-') && !/[0-9]/.test(this.src[this.i + 1] ?? '')) { this.i++; return { kind: 'unary', pos: at, op: '-', e: this.unary() }; }
    return this.postfix(this.primary());
  }

  postfix(e: Expr): Expr {
    for (;;) {
      // Traversals never cross a newline, even inside brackets? They may: HCL allows it in
      // newline-insensitive contexts, so use the context's rule.
      const save = this.i;
      this.skip();
      if (this.peek('.') && !this.peek('...')) {
        this.i++;
        this.skip();
        if (this.peek('*')) {
          this.i++;
          return { kind: 'splat', pos: e.pos, obj: e, rest: this.splatRest(true) };
        }
        const num = /^[0-9]+/.exec(this.src.slice(this.i));
        if (num) {
          this.i += num[0].length;
          e = { kind: 'index', pos: e.pos, obj: e, key: { kind: 'literal', pos: e.pos, value: Number(num[0]) } };
          continue;
        }
        const name = this.ident();
        if (name === undefined) this.fail(`expected an attribute name after ".", found ${this.describeHere()}`);
        e = { kind: 'getattr', pos: e.pos, obj: e, name };
        continue;
      }
      if (this.peek('[')) {
        this.i++;
        this.nl.push(true);
        this.skip();
        if (this.peek('*')) {
          this.i++;
          this.expect(']');
          this.nl.pop();
          return { kind: 'splat', pos: e.pos, obj: e, rest: this.splatRest(false) };
        }
        const key = this.expr();
        this.expect(']', 'to close the index');
        this.nl.pop();
        e = { kind: 'index', pos: e.pos, obj: e, key };
        continue;
      }
      this.i = save;
      return e;
    }
  }

  /** The traversal after a splat, applied to each element (attribute-only for `.*`). */
  private splatRest(attrOnly: boolean): Expr {
    const pos = this.pos();
    let e: Expr = { kind: 'var', pos, name: SPLAT_VAR };
    for (;;) {
      const save = this.i;
      this.skip();
      if (this.peek('.') && !this.peek('...')) {
        this.i++;
        const name = this.ident();
        if (name === undefined) { this.i = save; return e; }
        e = { kind: 'getattr', pos, obj: e, name };
        continue;
      }
      if (!attrOnly && this.peek('[')) {
        this.i++;
        this.nl.push(true);
        const key = this.expr();
        this.expect(']');
        this.nl.pop();
        e = { kind: 'index', pos, obj: e, key };
        continue;
      }
      this.i = save;
      return e;
    }
  }

  primary(): Expr {
    this.skip();
    const at = this.i;
    const pos = this.pos();
    const c = this.src[this.i];
    if (c === undefined) this.fail('expected an expression, found end of file');
    if (c === '"') return this.quoted();
    if (this.peek('<<')) return this.heredoc();
    if (/[0-9]/.test(c) || (c === '-' && /[0-9]/.test(this.src[this.i + 1] ?? ''))) {
      const m = /^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(this.src.slice(this.i))!;
      this.i += m[0].length;
      return { kind: 'literal', pos, value: Number(m[0]) };
    }
    if (c === '(') {
      this.i++;
      this.nl.push(true);
      const e = this.expr();
      this.expect(')', 'to close the parenthesis');
      this.nl.pop();
      return { kind: 'paren', pos, e };
    }
    if (c === '[') return this.tuple();
    if (c === '{') return this.object();
    const name = this.ident();
    if (name === undefined) this.fail(`expected an expression, found ${this.describeHere()}`, at);
    if (name === 'true' || name === 'false') return { kind: 'literal', pos, value: name === 'true' };
    if (name === 'null') return { kind: 'literal', pos, value: null };
    const save = this.i;
    this.skip(false);
    if (this.peek('(')) {
      this.i++;
      this.nl.push(true);
      const args: Expr[] = [];
      let expandFinal = false;
      this.skip();
      while (!this.peek(')')) {
        args.push(this.expr());
        this.skip();
        if (this.peek('...')) { this.i += 3; expandFinal = true; this.skip(); if (!this.peek(')')) this.fail('"..." may only follow the last argument'); break; }
        if (this.peek(',')) { this.i++; this.skip(); continue; }
        if (!this.peek(')')) this.fail(`expected "," or ")" in the call to ${name}, found ${this.describeHere()}`);
      }
      this.i++;
      this.nl.pop();
      return { kind: 'call', pos, name, args, expandFinal };
    }
    this.i = save;
    return { kind: 'var', pos, name };
  }

  /** Enters a `[` or `{` (newlines are blanks inside); a `for` expression there is read whole. */
  private openCollection(pos: Pos, close: ']' | '}'): Expr | undefined {
    this.i++;
    this.nl.push(true);
    this.skip();
    if (!this.isFor()) return undefined;
    const f = this.forExpr(pos, close === '}');
    this.expect(close, 'to close the for expression');
    this.nl.pop();
    return f;
  }

  tuple(): Expr {
    const pos = this.pos();
    const f = this.openCollection(pos, ']');
    if (f) return f;
    const items: Expr[] = [];
    while (!this.peek(']')) {
      items.push(this.expr());
      this.skip();
      if (this.peek(',')) { this.i++; this.skip(); continue; }
      if (!this.peek(']')) this.fail(`expected "," or "]" in the list, found ${this.describeHere()}`);
    }
    this.i++;
    this.nl.pop();
    return { kind: 'tuple', pos, items };
  }

  private isFor(): boolean {
    return /^for[\s]/.test(this.src.slice(this.i, this.i + 4));
  }

  forExpr(pos: Pos, object: boolean): Expr {
    this.i += 3; // for
    this.skip();
    let valVar = this.ident();
    if (valVar === undefined) this.fail('expected a variable name after "for"');
    let keyVar: string | undefined;
    this.skip();
    if (this.peek(',')) {
      this.i++;
      this.skip();
      keyVar = valVar;
      valVar = this.ident();
      if (valVar === undefined) this.fail('expected a second variable name after ","');
      this.skip();
    }
    if (!this.peek('in')) this.fail(`expected "in" in the for expression, found ${this.describeHere()}`);
    this.i += 2;
    const coll = this.expr();
    this.expect(':', 'after the for expression\'s collection');
    let keyExpr: Expr | undefined;
    let valExpr = this.expr();
    let group = false;
    this.skip();
    if (object) {
      if (!this.peek('=>')) this.fail(`expected "=>" in the object for expression, found ${this.describeHere()}`);
      this.i += 2;
      keyExpr = valExpr;
      valExpr = this.expr();
      this.skip();
      if (this.peek('...')) { this.i += 3; group = true; this.skip(); }
    }
    let cond: Expr | undefined;
    if (/^if[\s(]/.test(this.src.slice(this.i, this.i + 3))) {
      this.i += 2;
      cond = this.expr();
    }
    return { kind: 'for', pos, keyVar, valVar, coll, keyExpr, valExpr, cond, group, object };
  }

  object(): Expr {
    const pos = this.pos();
    const f = this.openCollection(pos, '}');
    if (f) return f;
    this.nl[this.nl.length - 1] = false;
    const items: { key: Expr; value: Expr }[] = [];
    for (;;) {
      this.skip(true);
      if (this.peek('}')) { this.i++; break; }
      const kpos = this.pos();
      let key: Expr;
      const save = this.i;
      const id = this.ident();
      this.skip(false);
      if (id !== undefined && (this.peek('=') || this.peek(':')) && !this.peek('==')) {
        key = { kind: 'literal', pos: kpos, value: id };
      } else {
        this.i = save;
        this.nl.push(true);
        key = this.binary(0);
        this.nl.pop();
        this.skip(false);
      }
      if (this.peek('=') && !this.peek('==')) this.i++;
      else if (this.peek(':')) this.i++;
      else this.fail(`expected "=" or ":" after the object key, found ${this.describeHere()}`);
      const value = this.expr();
      items.push({ key, value });
      this.skip(false);
      if (this.peek(',')) { this.i++; continue; }
      if (this.peek('\n')) continue;
      if (this.peek('}')) continue;
      this.fail(`expected "," a new line or "}" in the object, found ${this.describeHere()}`);
    }
    this.nl.pop();
    return { kind: 'object', pos, items };
  }

  quoted(): Expr & { kind: 'template' } {
    const pos = this.pos();
    this.i++; // "
    const parts = this.templateParts('quote');
    return { kind: 'template', pos, parts };
  }

  heredoc(): Expr {
    const pos = this.pos();
    this.i += 2;
    const indent = this.peek('-');
    if (indent) this.i++;
    const marker = this.ident();
    if (marker === undefined) this.fail('expected a heredoc marker after "<<"');
    if (this.src[this.i] === '\r') this.i++;
    if (this.src[this.i] !== '\n') this.fail('a heredoc marker must end its line');
    this.i++;
    // Find the closing line: only blanks and the marker.
    const startText = this.i;
    let end = -1;
    let k = this.i;
    while (k <= this.src.length) {
      const nlAt = this.src.indexOf('\n', k);
      const lineEnd = nlAt < 0 ? this.src.length : nlAt;
      if (this.src.slice(k, lineEnd).trim() === marker) { end = k; break; }
      if (nlAt < 0) break;
      k = nlAt + 1;
    }
    if (end < 0) this.fail(`heredoc "${marker}" is not closed: end it with a line holding only ${marker}`, startText);
    let text = this.src.slice(startText, end);
    if (indent) {
      const lines = text.split('\n');
      const last = lines.pop(); // after the final newline: ''
      const widths = lines.filter((l) => l.trim() !== '').map((l) => /^[ \t]*/.exec(l)![0].length);
      const min = widths.length ? Math.min(...widths) : 0;
      text = lines.map((l) => l.slice(Math.min(min, /^[ \t]*/.exec(l)![0].length))).join('\n') + '\n' + (last ?? '');
    }
    const sub = new Parser(text, this.file, this.pos(startText).line - 1);
    const parts = sub.templateParts('heredoc');
    const nlAfter = this.src.indexOf('\n', end);
    this.i = nlAfter < 0 ? this.src.length : nlAfter;
    return { kind: 'template', pos, parts };
  }

  /** Template text up to the closing quote (quote), or the whole source (heredoc, eof). */
  templateParts(mode: 'quote' | 'heredoc' | 'eof'): TemplatePart[] {
    const raw: Raw[] = [];
    let lit = '';
    const s = this.src;
    for (;;) {
      if (this.i >= s.length) {
        if (mode === 'quote') this.fail('unterminated string: add the closing quote');
        break;
      }
      const c = s[this.i];
      if (mode === 'quote' && c === '"') { this.i++; break; }
      if (mode === 'quote' && c === '\n') this.fail('unterminated string: a quoted string cannot span lines (use a heredoc)');
      if (mode === 'quote' && c === '\\') {
        const n = s[this.i + 1];
        const simple: Record<string, string> = { n: '\n', r: '\r', t: '\t', '"': '"', '\\': '\\' };
        if (n in simple) { lit += simple[n]; this.i += 2; continue; }
        if (n === 'u' || n === 'U') {
          const len = n === 'u' ? 4 : 8;
          const hex = s.slice(this.i + 2, this.i + 2 + len);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== len) this.fail(`invalid \\${n} escape: expected ${len} hex digits`);
          lit += String.fromCodePoint(parseInt(hex, 16));
          this.i += 2 + len;
          continue;
        }
        this.fail(`invalid escape "\\${n ?? ''}" in the string: use \\\\ for a backslash`);
      }
      if ((c === '$' || c === '%') && s[this.i + 1] === c && s[this.i + 2] === '{') { lit += `${c}{`; this.i += 3; continue; }
      if ((c === '$' || c === '%') && s[this.i + 1] === '{') {
        if (lit) { raw.push(lit); lit = ''; }
        this.i += 2;
        const before = s[this.i] === '~';
        if (before) this.i++;
        this.nl.push(true);
        if (c === '$') {
          const e = this.expr();
          this.skip();
          const after = this.peek('~');
          if (after) this.i++;
          this.expect('}', 'to close the interpolation');
          raw.push({ kind: 'interp', e, strip: { before, after } });
        } else {
          raw.push(this.directive(before));
        }
        this.nl.pop();
        continue;
      }
      lit += c;
      this.i++;
    }
    if (lit) raw.push(lit);
    return this.buildTemplate(raw);
  }

  private directive(before: boolean): Raw {
    this.skip();
    const pos = this.pos();
    const word = this.ident();
    let keyVar: string | undefined, valVar: string | undefined, e: Expr | undefined;
    if (word === 'if') e = this.expr();
    else if (word === 'for') {
      this.skip();
      valVar = this.ident();
      this.skip();
      if (this.peek(',')) { this.i++; this.skip(); keyVar = valVar; valVar = this.ident(); this.skip(); }
      if (!valVar || !this.peek('in')) this.fail('expected "%{ for NAME in EXPR }"');
      this.i += 2;
      e = this.expr();
    } else if (word !== 'else' && word !== 'endif' && word !== 'endfor') this.fail(`unknown template directive "${word ?? ''}": use if, else, endif, for or endfor`);
    this.skip();
    const after = this.peek('~');
    if (after) this.i++;
    this.expect('}', 'to close the directive');
    return { kind: 'dir', word: word!, pos, strip: { before, after }, keyVar, valVar, e };
  }

  /** Applies strip markers, then nests %{if}/%{for} directives. */
  private buildTemplate(raw: Raw[]): TemplatePart[] {
    for (let k = 0; k < raw.length; k++) {
      const r = raw[k];
      if (typeof r === 'string') continue;
      if (r.strip.before && typeof raw[k - 1] === 'string') raw[k - 1] = (raw[k - 1] as string).replace(/[ \t\r\n]+$/, '');
      if (r.strip.after && typeof raw[k + 1] === 'string') raw[k + 1] = (raw[k + 1] as string).replace(/^[ \t\r\n]+/, '');
    }
    let k = 0;
    const seq = (ends: string[]): { parts: TemplatePart[]; end?: Extract<Raw, { kind: 'dir' }> } => {
      const parts: TemplatePart[] = [];
      while (k < raw.length) {
        const r = raw[k++];
        if (typeof r === 'string') { if (r) parts.push(r); continue; }
        if (r.kind === 'interp') { parts.push({ kind: 'interp', e: r.e }); continue; }
        if (ends.includes(r.word)) return { parts, end: r };
        if (r.word === 'if') {
          const a = seq(['else', 'endif']);
          let b: TemplatePart[] = [];
          if (a.end?.word === 'else') {
            const bb = seq(['endif']);
            if (!bb.end) throw new HclError(r.pos, '%{if} has no %{endif}');
            b = bb.parts;
          } else if (!a.end) throw new HclError(r.pos, '%{if} has no %{endif}');
          parts.push({ kind: 'if', pos: r.pos, cond: r.e!, then: a.parts, else: b });
        } else if (r.word === 'for') {
          const body = seq(['endfor']);
          if (!body.end) throw new HclError(r.pos, '%{for} has no %{endfor}');
          parts.push({ kind: 'for', pos: r.pos, keyVar: r.keyVar, valVar: r.valVar!, coll: r.e!, body: body.parts });
        } else {
          throw new HclError(r.pos, `%{${r.word}} without its opening directive`);
        }
      }
      return { parts };
    };
    return seq([]).parts;
  }
}
