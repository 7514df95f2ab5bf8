// Runs the regexp moby/patternmatcher makes of a .dockerignore or --exclude pattern without a
// backtracking engine. Docker compiles it for Go's regexp (RE2: linear time); a JavaScript RegExp
// backtracks, so `*a*a*a*a*a*a*a*a*b` against a long name, or `**/**/**/**/x` against a deep path,
// ran for minutes, on the frontend (a git context's .dockerignore) or a worker (COPY --exclude),
// for any tenant. The regexps patternmatcher writes use a small subset: `(.*/)?`, `.*`, `[^/]*`,
// `[^/]`, character classes the pattern wrote (`[a-z]`, `[^x]`, possibly followed by `*`),
// escapes (`\.`, `\d`), `^`, and literal characters. That subset is parsed here and matched by
// simulating all positions at once (Thompson), O(path x pattern). Classes and escapes are still
// tested by a JavaScript RegExp, one character at a time (nothing to backtrack over).

type Token =
  | { kind: 'dirs-fork' } // (.*/)? : go on inside the group (next token) or past it (the one after)
  | { kind: 'dirs-in' } // inside (.*/)? : any character; a '/' may end the group
  | { kind: 'any-run' } // .* (the s flag: newlines too)
  | { kind: 'char'; test: (ch: string) => boolean; repeat: boolean } // one character (or a run with `*`)
  | { kind: 'start' }; // ^ : only at the beginning

export class GlobSyntaxError extends Error {}

/** One character against a class or escape, as the whole pattern's RegExp would test it. */
function charTest(source: string): (ch: string) => boolean {
  // The common ones without a RegExp call per character.
  if (source === '[^/]') return (ch) => ch !== '/';
  if (source.length === 1 || (source.length === 2 && source[0] === '\\' && /[^A-Za-z0-9]/.test(source[1]))) {
    const literal = source[source.length - 1];
    return (ch) => ch === literal;
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${source})$`, 'su');
  } catch {
    try {
      re = new RegExp(`^(?:${source})$`, 's');
    } catch {
      throw new GlobSyntaxError(`invalid ${source}`);
    }
  }
  return (ch) => re.test(ch);
}

/** Parses the regexp compilePattern wrote (without its leading `^` and trailing `$`). */
function parse(source: string): Token[] {
  const tokens: Token[] = [];
  const chars = Array.from(source);
  for (let i = 0; i < chars.length; ) {
    const rest = (n: number) => chars.slice(i, i + n).join('');
    let token: Token;
    if (rest(6) === '(.*/)?') {
      tokens.push({ kind: 'dirs-fork' });
      token = { kind: 'dirs-in' };
      i += 6;
    } else if (rest(2) === '.*') {
      token = { kind: 'any-run' };
      i += 2;
    } else if (chars[i] === '^') {
      token = { kind: 'start' };
      i++;
    } else {
      let text: string;
      if (chars[i] === '[') {
        // A class ends at the first unescaped ']' (JavaScript's reading, as the RegExp had it).
        let j = i + 1;
        while (j < chars.length && chars[j] !== ']') j += chars[j] === '\\' ? 2 : 1;
        if (j >= chars.length) throw new GlobSyntaxError('unterminated character class');
        text = chars.slice(i, j + 1).join('');
        i = j + 1;
      } else if (chars[i] === '\\') {
        if (i + 1 >= chars.length) throw new GlobSyntaxError('trailing backslash');
        const escaped = chars[i + 1];
        // Assertions and back-references would need more than one character at a time.
        if (/[bB1-9]/.test(escaped)) throw new GlobSyntaxError(`unsupported escape \\${escaped}`);
        text = `\\${escaped}`;
        i += 2;
      } else {
        text = chars[i].replace(/[.*+?()|{}$]/, '\\$&');
        i++;
      }
      const repeat = chars[i] === '*';
      if (repeat) i++;
      token = { kind: 'char', test: charTest(text), repeat };
    }
    tokens.push(token);
  }
  return tokens;
}

/** A compiled pattern: `test` answers as `new RegExp('^' + source + '$', 's').test` does. */
export class GlobProgram {
  private readonly tokens: Token[];
  // Reused by every test (one at a time: JavaScript runs one), so a test allocates nothing.
  private active: Uint8Array;
  private next: Uint8Array;
  private readonly pending: number[] = [];

  constructor(source: string) {
    this.tokens = parse(source);
    this.active = new Uint8Array(this.tokens.length + 1);
    this.next = new Uint8Array(this.tokens.length + 1);
  }

  test(text: string): boolean {
    const m = this.tokens.length;
    this.active.fill(0);
    this.enter(this.active, 0, 0);
    let position = 0;
    for (const ch of text) {
      position++;
      const { active, next } = this;
      next.fill(0);
      let alive = false;
      for (let s = 0; s < m; s++) {
        if (!active[s]) continue;
        const token = this.tokens[s];
        if (token.kind === 'dirs-in') {
          this.enter(next, s, position);
          if (ch === '/') this.enter(next, s + 1, position);
        } else if (token.kind === 'any-run') this.enter(next, s, position);
        else if (token.kind === 'char' && token.test(ch)) this.enter(next, token.repeat ? s : s + 1, position);
        else continue;
        alive = true;
      }
      if (!alive) return false;
      this.active = next;
      this.next = active;
    }
    return this.active[m] === 1;
  }

  /** Enters `state` and every state it reaches without a character (`position`: characters read so far). */
  private enter(set: Uint8Array, state: number, position: number): void {
    const m = this.tokens.length;
    const pending = this.pending;
    pending.push(state);
    while (pending.length > 0) {
      const s = pending.pop()!;
      if (set[s]) continue;
      set[s] = 1;
      if (s === m) continue;
      const token = this.tokens[s];
      if (token.kind === 'dirs-fork') pending.push(s + 1, s + 2);
      else if (token.kind === 'start') { if (position === 0) pending.push(s + 1); }
      else if (token.kind === 'any-run' || (token.kind === 'char' && token.repeat)) pending.push(s + 1);
    }
  }
}
