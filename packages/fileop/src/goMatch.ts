// Go's path.Match (the syntax of COPY/ADD wildcards), hand-written because JS glob libraries
// (minimatch, picomatch) differ on `[^...]`, escapes and error cases, and Go's is tiny.
import { FileOpError } from './FileOpError.js';

/** True if `pattern` has an unescaped `*`, `?` or `[` (BuildKit's containsWildcards). */
export function hasWildcard(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') { i++; continue; }
    if (c === '*' || c === '?' || c === '[') return true;
  }
  return false;
}

/** Removes backslash escapes from a pattern without wildcards, giving the literal name. */
export function unescapePattern(pattern: string): string {
  return pattern.replace(/\\(.)/g, '$1');
}

/**
 * Go path.Match: `*` any run of non-`/`, `?` one non-`/` char, `[...]`/`[^...]` classes with
 * ranges, `\` escapes. Throws EBADPATTERN for malformed patterns, like Go's ErrBadPattern.
 */
export function goMatch(pattern: string, name: string): boolean {
  const r = matchFrom(pattern, 0, name, 0);
  if (r === 'bad') throw new FileOpError('EBADPATTERN', `syntax error in pattern "${pattern}": check the brackets and escapes`);
  return r;
}

type Result = boolean | 'bad';

function matchFrom(p: string, pi: number, s: string, si: number): Result {
  while (pi < p.length) {
    const c = p[pi];
    if (c === '*') {
      while (p[pi] === '*') pi++;
      if (pi === p.length) {
        if (s.indexOf('/', si) >= 0) return validateRest(p, pi, false);
        return true;
      }
      // Try every split point that does not cross a '/'.
      let sawBad = false;
      for (let k = si; k <= s.length; k++) {
        const r = matchFrom(p, pi, s, k);
        if (r === true) return true;
        if (r === 'bad') sawBad = true;
        if (k < s.length && s[k] === '/') break;
      }
      return sawBad ? 'bad' : validateRest(p, pi, false);
    }
    if (c === '?') {
      if (si >= s.length || s[si] === '/') return validateRest(p, pi + 1, false);
      pi++; si++; continue;
    }
    if (c === '[') {
      const cls = parseClass(p, pi);
      if (cls === 'bad') return 'bad';
      if (si >= s.length || s[si] === '/') return validateRest(p, cls.end, false);
      const ch = s.codePointAt(si)!;
      if (cls.test(ch) === cls.negated) return validateRest(p, cls.end, false);
      si += ch > 0xffff ? 2 : 1;
      pi = cls.end;
      continue;
    }
    if (c === '\\') {
      pi++;
      if (pi >= p.length) return 'bad';
    }
    if (si >= s.length || s[si] !== p[pi]) return validateRest(p, pi + 1, false);
    pi++; si++;
  }
  return si === s.length;
}

/** Go reports ErrBadPattern even after a mismatch, so scan the rest of the pattern. */
function validateRest(p: string, pi: number, result: boolean): Result {
  while (pi < p.length) {
    const c = p[pi];
    if (c === '\\') { if (pi + 1 >= p.length) return 'bad'; pi += 2; continue; }
    if (c === '[') { const cls = parseClass(p, pi); if (cls === 'bad') return 'bad'; pi = cls.end; continue; }
    pi++;
  }
  return result;
}

interface CharClass { negated: boolean; end: number; test(ch: number): boolean }

function parseClass(p: string, start: number): CharClass | 'bad' {
  let i = start + 1;
  let negated = false;
  if (p[i] === '^') { negated = true; i++; }
  const ranges: Array<[number, number]> = [];
  let first = true;
  for (;;) {
    if (i >= p.length) return 'bad';
    if (p[i] === ']' && !first) { i++; break; }
    first = false;
    const lo = readClassChar(p, i);
    if (lo === 'bad') return 'bad';
    i = lo.next;
    let hi = lo.ch;
    if (p[i] === '-') {
      const h = readClassChar(p, i + 1);
      if (h === 'bad') return 'bad';
      hi = h.ch;
      i = h.next;
    }
    ranges.push([lo.ch, hi]);
  }
  return { negated, end: i, test: (ch) => ranges.some(([a, b]) => a <= ch && ch <= b) };
}

function readClassChar(p: string, i: number): { ch: number; next: number } | 'bad' {
  if (i >= p.length) return 'bad';
  if (p[i] === '-' || p[i] === ']') return 'bad';
  if (p[i] === '\\') { i++; if (i >= p.length) return 'bad'; }
  const ch = p.codePointAt(i)!;
  return { ch, next: i + (ch > 0xffff ? 2 : 1) };
}
