// Hand-written port of BuildKit's frontend/dockerfile/shell/lex.go: Docker's word expansion is
// not POSIX sh (no command substitution, its own escape token, `${VAR/pat/repl}` from bash) and
// no npm library reproduces it.
import { excerpt } from './DockerfileError.js';
import { ShellPattern, ShellPatternError, type PatternWork } from './shellPattern.js';

export type ExpansionEnv = Record<string, string> | ReadonlyMap<string, string>;

export interface ExpandOptions {
  /** The Dockerfile escape token: "\\" (default) or "`". */
  escape?: string;
  /** Keep quote characters in the result (used for heredoc bodies and heredoc names). */
  rawQuotes?: boolean;
  /** Keep escape characters in the result. */
  rawEscapes?: boolean;
  /** Leave `$VAR` / `${VAR}` untouched when VAR is unset (heredoc names). */
  skipUnsetEnv?: boolean;
  /** The work budget of `${var#pattern}`-style matching, shared by every word of a build (default: this word's own). */
  patternWork?: PatternWork;
  /** Collects the names the word reads that `env` does not set (ProcessWordWithMatches' Unmatched). */
  unmatched?: Set<string>;
}

/** A word that cannot be expanded; the message is Docker's, callers add file:line. */
export class WordExpansionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WordExpansionError';
  }
}

const MAX_DEPTH = 200;
/** Characters one expanded word may grow to: `ENV A=$A$A` twenty times over would be gigabytes. */
const MAX_EXPANDED_WORD = 4 * 1024 * 1024;

function checkLength(result: string): void {
  if (result.length > MAX_EXPANDED_WORD) throw new WordExpansionError(`the word expands to more than ${MAX_EXPANDED_WORD / 1024 / 1024} MiB; use shorter values`);
}

class WordsCollector {
  word = '';
  words: string[] = [];
  inWord = false;
  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.inWord && this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else this.addRawChar(ch);
  }
  addRawChar(ch: string): void {
    this.word += ch;
    this.inWord = true;
  }
  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }
  addRawString(s: string): void {
    this.word += s;
    this.inWord = true;
  }
  getWords(): string[] {
    if (this.word.length > 0) {
      this.words.push(this.word);
      this.word = '';
      this.inWord = false;
    }
    return this.words;
  }
}

function isSpace(ch: string): boolean {
  return /^\s$/u.test(ch);
}

const EOF = undefined;

class ShellWord {
  private readonly chars: string[];
  private pos = 0;
  private depth = 0;
  constructor(
    word: string,
    private readonly env: ExpansionEnv,
    private readonly escapeToken: string,
    private readonly rawQuotes: boolean,
    private readonly rawEscapes: boolean,
    private readonly skipUnsetEnv: boolean,
    private readonly patternWork: PatternWork,
    private readonly unmatched: Set<string> | undefined,
  ) {
    this.chars = Array.from(word);
  }
  private peek(): string | undefined {
    return this.chars[this.pos];
  }
  private next(): string | undefined {
    return this.chars[this.pos++];
  }
  private getEnv(name: string): [string, boolean] {
    const env = this.env;
    const found = env instanceof Map ? env.get(name) : Object.prototype.hasOwnProperty.call(env, name) ? (env as Record<string, string>)[name] : undefined;
    if (found !== undefined) return [found, true];
    this.unmatched?.add(name);
    return ['', false];
  }

  process(): [string, string[]] {
    return this.processStopOn(EOF, this.rawEscapes);
  }

  private processStopOn(stopChar: string | undefined, rawEscapes: boolean): [string, string[]] {
    if (++this.depth > MAX_DEPTH) throw new WordExpansionError('substitution nested too deeply');
    try {
      let result = '';
      const words = new WordsCollector();
      while (this.peek() !== EOF) {
        const ch = this.peek()!;
        if (stopChar !== EOF && ch === stopChar) {
          this.next();
          return [result, words.getWords()];
        }
        if (ch === "'" || ch === '"' || ch === '$') {
          const tmp = ch === "'" ? this.processSingleQuote() : ch === '"' ? this.processDoubleQuote() : this.processDollar();
          result += tmp;
          checkLength(result);
          if (ch === '$') words.addString(tmp);
          else words.addRawString(tmp);
        } else {
          let c = this.next()!;
          if (c === this.escapeToken) {
            if (rawEscapes) {
              words.addRawChar(c);
              result += c;
            }
            const n = this.next();
            if (n === EOF) break;
            c = n;
            words.addRawChar(c);
          } else {
            words.addChar(c);
          }
          result += c;
        }
      }
      if (stopChar !== EOF) throw new WordExpansionError(`unexpected end of statement while looking for matching ${stopChar}`);
      return [result, words.getWords()];
    } finally {
      this.depth--;
    }
  }

  private processSingleQuote(): string {
    let result = '';
    let ch = this.next()!;
    if (this.rawQuotes) result += ch;
    for (;;) {
      const c = this.next();
      if (c === EOF) throw new WordExpansionError('unexpected end of statement while looking for matching single-quote');
      if (c === "'") {
        if (this.rawQuotes) result += c;
        return result;
      }
      ch = c;
      result += ch;
    }
  }

  private processDoubleQuote(): string {
    let result = '';
    const open = this.next()!;
    if (this.rawQuotes) result += open;
    for (;;) {
      const p = this.peek();
      if (p === EOF) throw new WordExpansionError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        this.next();
        if (this.rawQuotes) result += p;
        return result;
      }
      if (p === '$') {
        result += this.processDollar();
        checkLength(result);
        continue;
      }
      let ch = this.next()!;
      if (ch === this.escapeToken) {
        if (this.rawEscapes) result += ch;
        const n = this.peek();
        if (n === EOF) continue;
        if (n === '"' || n === '$' || n === this.escapeToken) ch = this.next()!;
      }
      result += ch;
    }
  }

  private processName(): string {
    let name = '';
    while (this.peek() !== EOF) {
      const ch = this.peek()!;
      if (name.length === 0 && /^\p{Nd}$/u.test(ch)) {
        while (this.peek() !== EOF && /^\p{Nd}$/u.test(this.peek()!)) name += this.next();
        return name;
      }
      if (name.length === 0 && '@*#?-$!0'.includes(ch)) {
        this.next();
        return ch;
      }
      if (!/^[\p{L}\p{Nd}_]$/u.test(ch)) break;
      name += this.next();
    }
    return name;
  }

  private processDollar(): string {
    this.next();
    if (this.peek() !== '{') {
      const name = this.processName();
      if (name === '') return '$';
      const [v, set] = this.getEnv(name);
      return !set && this.skipUnsetEnv ? '$' + name : v;
    }
    this.next();
    const first = this.peek();
    if (first === EOF) throw new WordExpansionError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new WordExpansionError('syntax error: bad substitution');
    const name = this.processName();
    let ch = this.next();
    let chs = ch ?? '';
    let nullIsUnset = false;
    if (ch === '}') {
      const [v, set] = this.getEnv(name);
      return !set && this.skipUnsetEnv ? '${' + name + '}' : v;
    }
    if (ch === ':') {
      nullIsUnset = true;
      ch = this.next();
      chs += ch ?? '';
    }
    if (ch === ':' || ch === '+' || ch === '-' || ch === '?' || ch === '#' || ch === '%' || (nullIsUnset && ch !== undefined)) {
      if (!(ch === '+' || ch === '-' || ch === '?' || ch === '#' || ch === '%')) {
        throw new WordExpansionError(`unsupported modifier (${chs}) in substitution`);
      }
      const raw = ch === '#' || ch === '%';
      if (nullIsUnset && raw) throw new WordExpansionError(`unsupported modifier (${chs}) in substitution`);
      let word: string;
      try {
        [word] = this.processStopOn('}', raw);
      } catch (e) {
        if (this.peek() === EOF && !(e instanceof WordExpansionError && e.message === 'substitution nested too deeply')) {
          throw new WordExpansionError("syntax error: missing '}'");
        }
        throw e;
      }
      const [value, set] = this.getEnv(name);
      if (!set && this.skipUnsetEnv) return '${' + name + chs + word + '}';
      switch (ch) {
        case '-':
          return !set || (nullIsUnset && value === '') ? word : value;
        case '+':
          return !set || (nullIsUnset && value === '') ? '' : word;
        case '?':
          if (!set) throw new WordExpansionError(`${name}: ${word !== '' ? word : 'is not allowed to be unset'}`);
          if (nullIsUnset && value === '') throw new WordExpansionError(`${name}: ${word !== '' ? word : 'is not allowed to be empty'}`);
          return value;
        default: {
          let greedy = false;
          if (word.length > 0 && word[0] === ch) {
            greedy = true;
            word = word.slice(1);
          }
          return ch === '%' ? trimSuffix(word, value, greedy, this.patternWork) : trimPrefix(word, value, greedy, this.patternWork);
        }
      }
    }
    if (ch === '/') {
      const replaceAll = this.peek() === '/';
      if (replaceAll) this.next();
      let pattern: string;
      let replacement: string;
      try {
        [pattern] = this.processStopOn('/', true);
      } catch (e) {
        if (this.peek() === EOF) throw new WordExpansionError("syntax error: missing '/' in ${}");
        throw e;
      }
      try {
        [replacement] = this.processStopOn('}', true);
      } catch (e) {
        if (this.peek() === EOF) throw new WordExpansionError("syntax error: missing '}'");
        throw e;
      }
      const [value] = this.getEnv(name);
      const compiled = compilePattern(pattern, this.patternWork);
      const chars = Array.from(value);
      try {
        if (replaceAll) return compiled.replaceAll(chars, replacement);
        const match = compiled.find(chars, 0, false, true);
        return match ? chars.slice(0, match[0]).join('') + replacement + chars.slice(match[1]).join('') : value;
      } catch (e) {
        throw patternError(pattern, e);
      }
    }
    // shell/lex.go: at the end of the word Go's scanner yields EOF, which prints as U+FFFD.
    throw new WordExpansionError(`unsupported modifier (${ch === EOF ? '\uFFFD' : chs}) in substitution`);
  }
}

/** ${var#pattern} and ${var##pattern}: the value without the shortest (longest) prefix the pattern matches. */
function trimPrefix(pattern: string, value: string, greedy: boolean, work: PatternWork): string {
  const chars = Array.from(value);
  const compiled = compilePattern(pattern, work);
  try {
    const match = compiled.find(chars, 0, true, greedy);
    return match ? chars.slice(match[1]).join('') : value;
  } catch (e) {
    throw patternError(pattern, e);
  }
}

/** The pattern, or lex.go's error for it (an invalid escape, or too much work). */
function compilePattern(pattern: string, work: PatternWork): ShellPattern {
  try {
    return new ShellPattern(pattern, work);
  } catch (e) {
    throw patternError(pattern, e);
  }
}

function patternError(pattern: string, e: unknown): unknown {
  return e instanceof ShellPatternError ? new WordExpansionError(`invalid pattern (${excerpt(pattern, 200)}) in substitution: ${e.message}`) : e;
}

function reversePattern(pattern: string): string {
  const runes = Array.from(pattern);
  const out: string[] = new Array(runes.length);
  const last = runes.length - 1;
  for (let i = 0; i <= last; ) {
    const tok = runes[i];
    const outIdx = last - i;
    if (tok === '\\' && i !== last) {
      out[outIdx - 1] = tok;
      out[outIdx] = runes[i + 1];
      i += 2;
    } else {
      out[outIdx] = tok;
      i++;
    }
  }
  return out.join('');
}

function reverseString(s: string): string {
  return Array.from(s).reverse().join('');
}

function trimSuffix(pattern: string, value: string, greedy: boolean, work: PatternWork): string {
  return reverseString(trimPrefix(reversePattern(pattern), reverseString(value), greedy, work));
}

function lex(word: string, env: ExpansionEnv, opts: ExpandOptions): ShellWord {
  const escape = opts.escape ?? '\\';
  return new ShellWord(word, env, escape, opts.rawQuotes ?? false, opts.rawEscapes ?? false, opts.skipUnsetEnv ?? false, opts.patternWork ?? { steps: 0 }, opts.unmatched);
}

/** Expands one word like Docker's ProcessWord (quotes removed, variables substituted). */
export function expandWord(word: string, env: ExpansionEnv, opts: ExpandOptions = {}): string {
  return lex(word, env, opts).process()[0];
}

/**
 * Expands and splits like Docker's ProcessWords: unquoted whitespace (also whitespace coming
 * from a variable's value) separates words; quoted whitespace does not.
 */
export function expandWords(word: string, env: ExpansionEnv, opts: ExpandOptions = {}): string[] {
  return lex(word, env, opts).process()[1];
}
