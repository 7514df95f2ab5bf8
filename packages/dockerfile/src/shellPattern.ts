// The patterns of ${var#pattern}, ${var%pattern} and ${var/pattern/replacement}. BuildKit's
// shell/lex.go turns them into Go regexps, which run in linear time (RE2). A JavaScript RegExp
// backtracks: `*a*a*a*a*a*a*a*b` against a value of a few thousand characters runs for minutes,
// and the frontend expands every word of every tenant's Dockerfile on its one thread. So the
// pattern is matched here by hand, all positions at once (a Thompson simulation), in
// O(value x pattern) like RE2, with Go's meaning: `*` is `.*` (or `.*?`), `?` is `.`, and
// neither matches a newline (Go's `.` without the s flag).

/** A pattern token: any run of characters, any one character, or one literal character. */
type Token = { kind: 'star' } | { kind: 'any' } | { kind: 'lit'; ch: string };

/**
 * Work (value characters x pattern tokens stepped) the substitutions sharing one budget may do
 * before the next is refused: a few seconds; a real Dockerfile's use a few thousand.
 */
const MAX_STEPS = 300_000_000;

/** A work budget several patterns share (a build's: every substitution its Dockerfile makes). */
export interface PatternWork { steps: number }

export class ShellPatternError extends Error {}

/** convertShellPatternToRegex's reading of the pattern: `\*`, `\?` and `\\` are literal, `\}` and `\/` drop the `\`. */
export function parseShellPattern(pattern: string): Token[] {
  const chars = Array.from(pattern);
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === '*') tokens.push({ kind: 'star' });
    else if (ch === '?') tokens.push({ kind: 'any' });
    else if (ch === '\\') {
      const next = chars[i + 1];
      if (next === '}' || next === '/') continue;
      i++;
      if (next !== '*' && next !== '?' && next !== '\\') throw new ShellPatternError(`invalid escape '\\${next ?? ''}'`);
      tokens.push({ kind: 'lit', ch: next });
    } else tokens.push({ kind: 'lit', ch });
  }
  return tokens;
}

/** A pattern ready to match against values (each a list of code points). */
export class ShellPattern {
  private readonly tokens: Token[];

  constructor(pattern: string, private readonly work: PatternWork = { steps: 0 }) {
    this.tokens = parseShellPattern(pattern);
  }

  /**
   * The leftmost match at or after `from` ([start, end) in code points), as Go's FindIndex:
   * the longest one there with greedy stars, the shortest with lazy ones (only asked anchored).
   * `anchored`: the match must start at `from`.
   */
  find(value: readonly string[], from: number, anchored: boolean, greedy: boolean): [number, number] | undefined {
    const m = this.tokens.length;
    // starts[state]: the earliest start of a thread in that state (-1: none). A thread that got
    // there from an earlier start is always preferred (leftmost), and states do not remember more.
    let starts = new Int32Array(m + 1).fill(-1);
    let next = new Int32Array(m + 1);
    let best: [number, number] | undefined;
    const enter = (set: Int32Array, state: number, start: number) => {
      // A star may match nothing: entering it enters the state after it too.
      for (let s = state; s <= m; s++) {
        if (set[s] !== -1 && set[s] <= start) return;
        set[s] = start;
        if (s === m || this.tokens[s].kind !== 'star') return;
      }
    };
    for (let i = from; ; i++) {
      if (!best && (!anchored || i === from)) enter(starts, 0, i);
      const accepted = starts[m];
      if (accepted !== -1 && (!best || accepted < best[0] || (accepted === best[0] && greedy))) {
        best = [accepted, i];
        if (!greedy) return best;
      }
      if (i === value.length) return best;
      const ch = value[i];
      next.fill(-1);
      let alive = false;
      for (let s = 0; s < m; s++) {
        const start = starts[s];
        if (start === -1 || (best && start > best[0])) continue;
        const token = this.tokens[s];
        if (token.kind === 'star') { if (ch !== '\n') enter(next, s, start); }
        else if (token.kind === 'any' ? ch !== '\n' : token.ch === ch) enter(next, s + 1, start);
      }
      this.work.steps += m + 1;
      if (this.work.steps > MAX_STEPS) throw new ShellPatternError(`matching it against a value of ${value.length} characters exceeds the work one build's substitutions may do; use shorter values or simpler patterns`);
      [starts, next] = [next, starts];
      for (let s = 0; s <= m && !alive; s++) alive = starts[s] !== -1;
      if (!alive && (best || anchored)) return best;
    }
  }

  /** Go's Regexp.ReplaceAllString: successive non-overlapping matches; an empty match right after a match is not replaced. */
  replaceAll(value: readonly string[], replacement: string): string {
    let out = '';
    let lastMatchEnd = 0;
    for (let searchPos = 0; searchPos <= value.length; ) {
      const match = this.find(value, searchPos, false, true);
      if (!match) break;
      const [start, end] = match;
      out += value.slice(lastMatchEnd, start).join('');
      if (end > lastMatchEnd || start === 0) out += replacement;
      lastMatchEnd = end;
      // Advance past the match, at least one character.
      searchPos = searchPos + 1 > end ? searchPos + 1 : end;
    }
    return out + value.slice(lastMatchEnd).join('');
  }
}
