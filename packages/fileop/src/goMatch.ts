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
  const r = match(pattern, name);
  if (r === 'bad') throw new FileOpError('EBADPATTERN', `syntax error in pattern "${pattern}": check the brackets and escapes`);
  return r;
}

type Result = boolean | 'bad';

/**
 * Go's Match, step for step: each chunk (the text between stars) is matched at the leftmost place
 * it fits, never tried again. That is linear in pattern x name; trying every split of every star
 * (as this did) was exponential: `*a*a*a*a*b` against a 200-letter name took 26 s, and COPY's
 * wildcards meet a tenant's file names on the frontend and workers.
 */
function match(p: string, s: string): Result {
  let pi = 0;
  let si = 0;
  pattern: while (pi < p.length) {
    const { star, start, end } = scanChunk(p, pi);
    pi = end;
    // A trailing star matches the rest of the name unless it has a '/'.
    if (star && start === end) return s.indexOf('/', si) < 0;
    const here = matchChunk(p, start, end, s, si);
    // The last chunk must use up the name; an earlier one may leave the rest to later stars.
    if (typeof here === 'number' && (here === s.length || pi < p.length)) {
      si = here;
      continue;
    }
    if (here === 'bad') return 'bad';
    if (star) {
      // The leftmost place after skipping 1, 2, ... characters (never a '/').
      for (let i = si; i < s.length && s[i] !== '/'; i++) {
        const t = matchChunk(p, start, end, s, i + 1);
        if (typeof t === 'number') {
          if (pi === p.length && t < s.length) continue;
          si = t;
          continue pattern;
        }
        if (t === 'bad') return 'bad';
      }
    }
    // Go reports ErrBadPattern even after a mismatch: check the rest of the pattern.
    while (pi < p.length) {
      const chunk = scanChunk(p, pi);
      pi = chunk.end;
      if (matchChunk(p, chunk.start, chunk.end, '', 0) === 'bad') return 'bad';
    }
    return false;
  }
  return si === s.length;
}

/** Go's scanChunk: the stars at `from`, then the chunk up to the next star outside a class. */
function scanChunk(p: string, from: number): { star: boolean; start: number; end: number } {
  let i = from;
  while (p[i] === '*') i++;
  const start = i;
  let inRange = false;
  for (; i < p.length; i++) {
    const c = p[i];
    if (c === '\\') { if (i + 1 < p.length) i++; }
    else if (c === '[') inRange = true;
    else if (c === ']') inRange = false;
    else if (c === '*' && !inRange) break;
  }
  return { star: start > from, start, end: i };
}

/**
 * Go's matchChunk: p[start, end) against s at si; the index after the match, false, or 'bad'
 * (the chunk is checked to its end even after a mismatch, as Go does).
 */
function matchChunk(p: string, start: number, end: number, s: string, si: number): number | false | 'bad' {
  let failed = false;
  for (let pi = start; pi < end; ) {
    if (!failed && si >= s.length) failed = true;
    const c = p[pi];
    if (c === '[') {
      const cls = parseClass(p, pi);
      if (cls === 'bad') return 'bad';
      if (!failed) {
        const ch = s.codePointAt(si)!;
        si += ch > 0xffff ? 2 : 1;
        if (cls.test(ch) === cls.negated) failed = true;
      }
      pi = cls.end;
    } else if (c === '?') {
      if (!failed) {
        if (s[si] === '/') failed = true;
        si += s.codePointAt(si)! > 0xffff ? 2 : 1;
      }
      pi++;
    } else {
      if (c === '\\') {
        pi++;
        if (pi >= end) return 'bad';
      }
      if (!failed) {
        if (p[pi] !== s[si]) failed = true;
        si++;
      }
      pi++;
    }
  }
  return failed ? false : si;
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
