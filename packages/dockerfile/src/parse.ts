// Hand-written port of BuildKit's frontend/dockerfile/parser (+ the flag and argument parsing of
// instructions/): dockerfile-ast loses whitespace inside JSON strings and has no heredoc bodies,
// so it cannot reproduce what Docker builds.
import { DockerfileError } from './DockerfileError.js';
import { expandWords } from './expandWord.js';
import { FlagError, parseFlags } from './instructions/bflag.js';
import { withSuggestion } from './instructions/suggest.js';

export interface Directive {
  name: string;
  value: string;
  line: number;
}

export interface Flag {
  name: string;
  /** Undefined for a bare boolean flag such as `--link`. */
  value: string | undefined;
}

export interface Heredoc {
  name: string;
  /** Body, each line ending with "\n"; leading tabs already removed for `<<-`. */
  content: string;
  /** For `<<-`: the body as written, tabs kept (BuildKit's parser keeps it so; ONBUILD stores it). */
  raw?: string;
  /** False when any part of the delimiter was quoted (`<<'EOF'`, `<<"EOF"`). */
  expand: boolean;
  chomp: boolean;
  fileDescriptor: number;
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface Instruction {
  /** Upper-case instruction name, e.g. "RUN". */
  keyword: string;
  /** The instruction as Docker sees it: continuations joined, comments removed, trimmed. */
  original: string;
  /** The exact source lines startLine..endLine (including heredoc bodies). */
  text: string;
  flags: Flag[];
  /** Arguments after the flags; meaning depends on the keyword (see README). */
  args: string[];
  /** The argument text after the flags, as written (trimmed). */
  rest: string;
  /** True when the arguments were given in JSON (exec) form. */
  json: boolean;
  /** ENV / LABEL pairs (unexpanded). */
  pairs?: KeyValue[];
  heredocs: Heredoc[];
  /** For ONBUILD: the trigger instruction. */
  trigger?: Instruction;
  startLine: number;
  endLine: number;
}

export interface ParsedStage {
  index: number;
  /** Stage name from `AS name`, lower-cased like BuildKit compares it. */
  name?: string;
  from: Instruction;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  file: string;
  directives: Directive[];
  escape: string;
  /** Every instruction in file order (global ARGs, FROMs and stage instructions). */
  instructions: Instruction[];
  /** ARG instructions before the first FROM. */
  metaArgs: Instruction[];
  stages: ParsedStage[];
  warnings: { line: number; message: string }[];
}

export interface ParseOptions {
  /** Name used in error messages, default "Dockerfile". */
  file?: string;
}

export const INSTRUCTIONS = [
  'ADD', 'ARG', 'CMD', 'COPY', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'FROM', 'HEALTHCHECK', 'LABEL',
  'MAINTAINER', 'ONBUILD', 'RUN', 'SHELL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR',
] as const;
const INSTRUCTION_SET = new Set<string>(INSTRUCTIONS);
const VALID_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const RE_DIRECTIVE = /^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$/;
const RE_HEREDOC = /^(\d*)<<(-?)([^<]*)$/;
const STAGE_NAME = /^[a-z][a-z0-9-_.]*$/;

function isWs(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\v' || c === '\f' || c === '\r' || c === '\n';
}

function trimLeft(s: string): string {
  let i = 0;
  while (i < s.length && isWs(s[i])) i++;
  return i === 0 ? s : s.slice(i);
}

/** Removes a trailing escape token (plus trailing blanks); reports whether the line ended. */
function trimContinuation(line: string, escape: string): [string, boolean] {
  let end = line.length;
  while (end > 0 && (line[end - 1] === ' ' || line[end - 1] === '\t')) end--;
  if (end > 0 && line[end - 1] === escape) return [line.slice(0, end - 1), false];
  return [line, true];
}

/**
 * BuildKit's two word scanners, one state machine: extractBuilderFlags (parser.go: leading
 * `--flag` words, quotes and backslashes removed, the rest of the line returned) and parseWords
 * (line_parsers.go: every word, quotes and escape tokens kept, escapes literal in single quotes).
 */
interface WordScan {
  /** The escape character: always a backslash for flags, the Dockerfile's escape token for words. */
  escape: string;
  /** Keep quote characters and escapes in the words (parseWords). */
  keep: boolean;
  /** Stop at the first word not starting with `--`, or after a lone `--` (extractBuilderFlags). */
  flagsOnly: boolean;
}

function scanWords(line: string, o: WordScan): [string, string[]] {
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  const chars = Array.from(line);
  const rest = (pos: number) => chars.slice(pos).join('');
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = pos < chars.length ? chars[pos] : '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isWs(ch)) continue;
      if (o.flagsOnly && (ch !== '-' || chars[pos + 1] !== '-')) return [rest(pos), words];
      phase = 'word';
    }
    if (pos === chars.length) {
      if (!(o.flagsOnly && word === '--') && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isWs(ch)) {
        phase = 'spaces';
        if (o.flagsOnly && word === '--') return [rest(pos), words];
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
        if (!o.keep) continue;
      }
      if (ch === o.escape) {
        if (pos + 1 === chars.length) continue;
        if (o.keep) word += ch;
        ch = chars[++pos];
      }
      word += ch;
      continue;
    }
    // in quote
    if (ch === quote) {
      phase = 'word';
      if (!o.keep) continue;
    }
    if (ch === o.escape && !(o.keep && quote === "'")) {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      if (o.keep) word += ch;
      ch = chars[++pos];
    }
    word += ch;
  }
  return ['', words];
}

/** Splits "--a=1 --b 'x y' rest" into flags and the remaining text (extractBuilderFlags). */
function extractFlags(line: string): [string, string[]] {
  return scanWords(line, { escape: '\\', keep: false, flagsOnly: true });
}

/** parseWords from BuildKit's line_parsers.go: splits on blanks, keeps quotes and escapes. */
export function splitWordsKeepingQuotes(rest: string, escape: string): string[] {
  return scanWords(rest, { escape, keep: true, flagsOnly: false })[1];
}

function splitWhitespace(rest: string): string[] {
  const t = rest.trim();
  return t === '' ? [] : t.split(/[\t\v\f\r ]+/);
}

/** Parses a JSON array of strings; undefined when `rest` is not valid JSON. */
function parseJsonArray(rest: string, err: (m: string) => never): string[] | undefined {
  const t = trimLeft(rest);
  if (!t.startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  if (!v.every((x) => typeof x === 'string')) err('when using JSON array syntax, arrays must be comprised of strings only');
  return v as string[];
}

interface RawInstruction {
  line: string;
  startLine: number;
  endLine: number;
  heredocs: Heredoc[];
}

function heredocsFromLine(line: string, err: (m: string) => never): Omit<Heredoc, 'content'>[] {
  let words: string[];
  try {
    words = expandWords(line, {}, { escape: '\\', rawQuotes: true, rawEscapes: true });
  } catch {
    return [];
  }
  const docs: Omit<Heredoc, 'content'>[] = [];
  for (const word of words) {
    const m = RE_HEREDOC.exec(word);
    if (!m || m[3].length === 0) continue;
    let plain: string[];
    let raw: string[];
    try {
      plain = expandWords(m[3], {}, { skipUnsetEnv: true });
      raw = expandWords(m[3], {}, { skipUnsetEnv: true, rawQuotes: true });
    } catch (e) {
      err(`invalid heredoc delimiter ${m[3]}: ${(e as Error).message}`);
    }
    if (plain.length !== 1 || raw.length !== 1) continue;
    const quotes = (s: string): number => (s.match(/['"]/g) ?? []).length;
    docs.push({ name: plain[0], expand: quotes(plain[0]) === quotes(raw[0]), chomp: m[2] === '-', fileDescriptor: m[1] === '' ? 0 : Number(m[1]) });
  }
  return docs;
}

class Parser {
  readonly directives: Directive[] = [];
  escape = '\\';
  private directivesDone = false;
  private readonly seenDirectives = new Set<string>();
  readonly warnings: { line: number; message: string }[] = [];
  constructor(readonly file: string) {}

  error(message: string, line: number, endLine = line): never {
    throw new DockerfileError(message, line, endLine, this.file);
  }

  private possibleDirective(text: string, lineNo: number): void {
    if (this.directivesDone) return;
    const m = RE_DIRECTIVE.exec(text);
    if (!m) {
      this.directivesDone = true;
      return;
    }
    const name = m[1].toLowerCase();
    if (!VALID_DIRECTIVES.has(name)) {
      this.directivesDone = true;
      return;
    }
    if (this.seenDirectives.has(name)) this.error(`only one ${name} parser directive can be used`, lineNo);
    this.seenDirectives.add(name);
    if (name === 'escape') {
      if (m[2] !== '\\' && m[2] !== '`') this.error(`invalid escape token '${m[2]}' does not match \` or \\`, lineNo);
      this.escape = m[2];
    }
    this.directives.push({ name, value: m[2], line: lineNo });
  }

  split(text: string): RawInstruction[] {
    const lines = text.split('\n');
    if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length > 0 && lines[0].startsWith('\uFEFF')) lines[0] = lines[0].slice(1);
    const out: RawInstruction[] = [];
    let i = 0;
    const isComment = (l: string): boolean => trimLeft(l).startsWith('#');
    const stripCR = (l: string): string => (l.endsWith('\r') ? l.slice(0, -1) : l);
    while (i < lines.length) {
      const raw = stripCR(lines[i]);
      const lineNo = i + 1;
      i++;
      const stripped = trimLeft(raw);
      this.possibleDirective(stripped, lineNo);
      const processed = stripped.startsWith('#') ? '' : stripped;
      let [line, ended] = trimContinuation(processed, this.escape);
      if (ended && line === '') continue;
      const startLine = lineNo;
      let endLine = lineNo;
      const parts: string[] = [line];
      let emptyContinuation = false;
      while (!ended && i < lines.length) {
        const cont = stripCR(lines[i]);
        i++;
        endLine = i;
        this.possibleDirective(cont, i);
        if (isComment(cont)) continue;
        if (trimLeft(cont).length === 0) {
          emptyContinuation = true;
          continue;
        }
        const [c, e] = trimContinuation(cont, this.escape);
        parts.push(c);
        ended = e;
      }
      line = parts.join('');
      if (emptyContinuation) this.warnings.push({ line: startLine, message: 'empty continuation line found; empty continuation lines will become errors in a future release' });
      const heredocs: Heredoc[] = [];
      const keyword = line.trim().split(/[\t\v\f\r ]+/, 2);
      let k = keyword[0]?.toUpperCase() ?? '';
      if (k === 'ONBUILD') k = (keyword.length > 1 ? line.trim().slice(keyword[0].length).trim().split(/[\t\v\f\r ]+/, 1)[0] : '').toUpperCase();
      if ((k === 'RUN' || k === 'COPY' || k === 'ADD') && line.includes('<<') && !isJsonForm(line)) {
        for (const doc of heredocsFromLine(line, (m) => this.error(m, startLine, endLine))) {
          const body: string[] = [];
          let terminated = false;
          while (i < lines.length) {
            const l = stripCR(lines[i]);
            i++;
            endLine = i;
            const candidate = doc.chomp ? l.replace(/^\t+/, '') : l;
            if (candidate === doc.name) {
              terminated = true;
              break;
            }
            body.push(l + '\n');
          }
          if (!terminated) this.error(`unterminated heredoc: no line "${doc.name}" closes the heredoc; add it after the content`, startLine, endLine);
          const content = body.join('');
          heredocs.push(doc.chomp ? { ...doc, content: content.replace(/^\t+/gm, ''), raw: content } : { ...doc, content });
        }
      }
      out.push({ line, startLine, endLine, heredocs });
    }
    return out;
  }
}

function isJsonForm(line: string): boolean {
  // RUN/COPY/ADD in JSON form cannot carry heredocs; the flag-stripped rest starts with "[".
  const t = line.trim();
  const m = /^\S+\s+(?:ONBUILD\s+\S+\s+)?/i.exec(t);
  const rest = m ? extractFlags(t.slice(m[0].length))[0] : '';
  try {
    const v: unknown = JSON.parse(trimLeft(rest));
    return Array.isArray(v);
  } catch {
    return false;
  }
}

function buildInstruction(p: Parser, raw: RawInstruction, lines: string[], allowOnbuild = true): Instruction {
  const err = (m: string): never => p.error(m, raw.startLine, raw.endLine);
  const trimmed = raw.line.trim();
  const ws = /[\t\v\f\r ]+/.exec(trimmed);
  const cmd = ws ? trimmed.slice(0, ws.index) : trimmed;
  const after = ws ? trimmed.slice(ws.index + ws[0].length) : '';
  const keyword = cmd.toUpperCase();
  if (!INSTRUCTION_SET.has(keyword)) {
    err(withSuggestion(`unknown instruction: ${cmd}`, cmd, INSTRUCTIONS, false));
  }
  const base: Instruction = {
    keyword,
    original: trimmed,
    text: lines.slice(raw.startLine - 1, raw.endLine).join('\n'),
    flags: [],
    args: [],
    rest: '',
    json: false,
    heredocs: raw.heredocs,
    startLine: raw.startLine,
    endLine: raw.endLine,
  };
  if (keyword === 'ONBUILD') {
    if (!allowOnbuild) err('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
    if (after === '') err('ONBUILD requires at least one argument, e.g. ONBUILD RUN make');
    const trigger = buildInstruction(p, { ...raw, line: after }, lines, false);
    if (trigger.keyword === 'FROM' || trigger.keyword === 'MAINTAINER') err(`${trigger.keyword} isn't allowed as an ONBUILD trigger`);
    return { ...base, args: [after], rest: after, trigger };
  }
  const [restRaw, flagWords] = extractFlags(after);
  const rest = restRaw.trim();
  base.rest = rest;
  // parseHealthcheck never parses the flags of HEALTHCHECK NONE: any are accepted and unused.
  const unparsedFlags = keyword === 'HEALTHCHECK' && splitWhitespace(rest)[0]?.toUpperCase() === 'NONE';
  try {
    if (!unparsedFlags) base.flags = parseFlags(keyword, flagWords);
  } catch (e) {
    if (e instanceof FlagError) err(e.message);
    throw e;
  }
  const json = (): string[] | undefined => parseJsonArray(rest, err);
  /** The JSON form's words when `rest` is a JSON array, else the shell form's. */
  const jsonOrShell = (shell: () => string[]) => {
    const j = json();
    if (j) {
      base.json = true;
      base.args = j;
    } else base.args = shell();
  };
  switch (keyword) {
    case 'RUN':
    case 'CMD':
    case 'ENTRYPOINT':
    case 'SHELL': {
      jsonOrShell(() => [rest]);
      // BuildKit takes an empty shell form as one empty word: `CMD` is [sh -c ""], `RUN` runs "".
      if (keyword === 'SHELL' && !base.json) err('SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]');
      if (keyword === 'SHELL' && base.args.length === 0) err('SHELL requires at least one argument');
      break;
    }
    case 'ADD':
    case 'COPY':
    case 'VOLUME': {
      jsonOrShell(() => splitWhitespace(rest));
      if (keyword === 'VOLUME' && base.args.length === 0) err('VOLUME requires at least one argument');
      if (keyword !== 'VOLUME') {
        if (base.args.length < 2) err(`${keyword} requires at least two arguments, but only one was provided. Destination could not be determined`);
      }
      break;
    }
    case 'ENV':
    case 'LABEL': {
      const words = splitWordsKeepingQuotes(rest, p.escape);
      if (words.length === 0) err(`${keyword} requires at least one argument`);
      const pairs: KeyValue[] = [];
      if (!words[0].includes('=')) {
        const parts = rest.split(/[\t\v\f\r ]+/);
        const m = /[\t\v\f\r ]+/.exec(rest);
        if (!m) err(`${keyword} must have two arguments: ${keyword} <name> <value> or ${keyword} <name>=<value>`);
        pairs.push({ key: parts[0], value: rest.slice(m!.index + m![0].length) });
      } else {
        for (const w of words) {
          const eq = w.indexOf('=');
          if (eq < 0) err(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
          pairs.push({ key: w.slice(0, eq), value: w.slice(eq + 1) });
        }
      }
      for (const pair of pairs) if (pair.key === '') err(`${keyword} names can not be blank`);
      base.pairs = pairs;
      base.args = pairs.flatMap((kv) => [kv.key, kv.value]);
      break;
    }
    case 'ARG': {
      base.args = splitWordsKeepingQuotes(rest, p.escape);
      if (base.args.length === 0) err('ARG requires at least one argument, e.g. ARG VERSION=1.0');
      // parseArg: the name before the first `=`, as written, must not be empty.
      if (base.args.some((w) => w.startsWith('='))) err('ARG names can not be blank');
      break;
    }
    case 'FROM': {
      base.args = splitWhitespace(rest);
      if (base.args.length === 0 || base.args.length === 2 || base.args.length > 3 || (base.args.length === 3 && base.args[1].toLowerCase() !== 'as')) {
        err('FROM requires either one or three arguments: FROM <image> [AS <name>]');
      }
      break;
    }
    case 'EXPOSE':
      base.args = splitWhitespace(rest);
      if (base.args.length === 0) err('EXPOSE requires at least one argument');
      break;
    case 'HEALTHCHECK': {
      const words = splitWhitespace(rest);
      const type = (words[0] ?? '').toUpperCase();
      if (type === 'NONE') {
        if (words.length > 1) err('HEALTHCHECK NONE takes no arguments');
        base.args = ['NONE'];
      } else if (type === 'CMD') {
        const cmdRest = rest.slice(words[0].length).trim();
        if (cmdRest === '') err('Missing command after HEALTHCHECK CMD');
        const j = parseJsonArray(cmdRest, err);
        if (j) {
          base.json = true;
          base.args = ['CMD', ...j];
        } else base.args = ['CMD', cmdRest];
      } else {
        err(`Unknown type ${JSON.stringify(words[0] ?? '')} in HEALTHCHECK (try CMD)`);
      }
      break;
    }
    case 'USER':
    case 'WORKDIR':
    case 'STOPSIGNAL':
    case 'MAINTAINER':
      if (rest === '') err(`${keyword} requires exactly one argument`);
      base.args = [rest];
      break;
  }
  return base;
}

/** Parses Dockerfile text into directives, instructions and stages. Throws DockerfileError. */
export function parse(text: string, options: ParseOptions = {}): ParsedDockerfile {
  const file = options.file ?? 'Dockerfile';
  const p = new Parser(file);
  const raws = p.split(text);
  const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  const instructions: Instruction[] = [];
  const metaArgs: Instruction[] = [];
  const stages: ParsedStage[] = [];
  const names = new Map<string, number>();
  for (const raw of raws) {
    const ins = buildInstruction(p, raw, lines);
    instructions.push(ins);
    if (ins.keyword === 'FROM') {
      let name: string | undefined;
      if (ins.args.length === 3) {
        name = ins.args[2].toLowerCase();
        if (!STAGE_NAME.test(name)) {
          p.error(`invalid name for build stage: "${ins.args[2]}", name can't start with a number or contain symbols`, ins.startLine);
        }
        // BuildKit only warns (lint rule DuplicateStageName); later references find the last
        // stage of that name, as its name map keeps the last one.
        const prev = names.get(name);
        if (prev !== undefined) {
          p.warnings.push({ line: ins.startLine, message: `Duplicate stage name "${ins.args[2]}", stage names should be unique` });
          stages[prev].name = undefined;
        }
        names.set(name, stages.length);
      }
      stages.push({ index: stages.length, name, from: ins, instructions: [] });
    } else if (stages.length === 0) {
      if (ins.keyword !== 'ARG') {
        p.error('no build stage in current context', ins.startLine, ins.endLine);
      }
      metaArgs.push(ins);
    } else {
      stages[stages.length - 1].instructions.push(ins);
    }
  }
  if (stages.length === 0) p.error('dockerfile contains no stages to build', 0);
  return { file, directives: p.directives, escape: p.escape, instructions, metaArgs, stages, warnings: p.warnings };
}
