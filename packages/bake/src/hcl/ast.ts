// The syntax tree both HCL syntaxes (native and JSON) parse into; eval.ts evaluates it.

export interface Pos { file: string; line: number; col: number }

export type Expr =
  | { kind: 'literal'; pos: Pos; value: unknown }
  | { kind: 'template'; pos: Pos; parts: TemplatePart[] }
  | { kind: 'var'; pos: Pos; name: string }
  | { kind: 'getattr'; pos: Pos; obj: Expr; name: string }
  | { kind: 'index'; pos: Pos; obj: Expr; key: Expr }
  /** `a[*].b` / `a.*.b`: each element of obj through `rest` (which reads the `splat` var). */
  | { kind: 'splat'; pos: Pos; obj: Expr; rest: Expr }
  | { kind: 'call'; pos: Pos; name: string; args: Expr[]; expandFinal: boolean }
  | { kind: 'tuple'; pos: Pos; items: Expr[] }
  | { kind: 'object'; pos: Pos; items: { key: Expr; value: Expr }[] }
  | { kind: 'for'; pos: Pos; keyVar?: string; valVar: string; coll: Expr; keyExpr?: Expr; valExpr: Expr; cond?: Expr; group: boolean; object: boolean }
  | { kind: 'cond'; pos: Pos; cond: Expr; a: Expr; b: Expr }
  | { kind: 'binary'; pos: Pos; op: string; l: Expr; r: Expr }
  | { kind: 'unary'; pos: Pos; op: '!' | '-'; e: Expr }
  | { kind: 'paren'; pos: Pos; e: Expr };

export type TemplatePart =
  | string
  | { kind: 'interp'; e: Expr }
  | { kind: 'if'; pos: Pos; cond: Expr; then: TemplatePart[]; else: TemplatePart[] }
  | { kind: 'for'; pos: Pos; keyVar?: string; valVar: string; coll: Expr; body: TemplatePart[] };

export interface Attribute { name: string; expr: Expr; pos: Pos }
export interface Block { type: string; labels: string[]; body: Body; pos: Pos }
export interface Body { attributes: Attribute[]; blocks: Block[] }

/** The placeholder a splat's `rest` reads for the current element. */
export const SPLAT_VAR = '\u0000splat';

export class HclError extends Error {
  constructor(readonly pos: Pos | undefined, readonly detail: string) {
    super(pos ? `${pos.file}:${pos.line}: ${detail}` : detail);
    this.name = 'HclError';
  }
}

/** A bare identifier (a keyword such as a function parameter name), or undefined. */
export function asKeyword(e: Expr): string | undefined {
  if (e.kind === 'var') return e.name;
  // The JSON syntax spells keywords as strings.
  if (e.kind === 'template' && e.parts.length === 1 && typeof e.parts[0] === 'string') return e.parts[0];
  if (e.kind === 'template' && e.parts.length === 0) return '';
  return undefined;
}
