// BuildKit's util/suggest: the "(did you mean X?)" hint. A candidate within Levenshtein
// distance 2 (strictly less than 3, as HCL does), the closest first; none on an exact match.

/**
 * The Levenshtein distance of `a` and `b` when it is at most `max`, else `max + 1`. Only the
 * diagonal band the answer can lie in is computed, and a row past `max` ends it: a hint is a
 * distance of at most 2, and the full table for a long word against thousands of stage or
 * argument names (an attacker's Dockerfile) would be quadratic work on the frontend.
 */
function boundedLevenshtein(a: readonly string[], b: readonly string[], max: number): number {
  const over = max + 1;
  if (Math.abs(a.length - b.length) > max) return over;
  let prev = new Array<number>(b.length + 2).fill(over);
  let cur = new Array<number>(b.length + 2).fill(over);
  for (let j = 0; j <= Math.min(b.length, max); j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    const from = Math.max(1, i - max);
    const to = Math.min(b.length, i + max);
    cur[from - 1] = from === 1 && i <= max ? i : over;
    let rowMin = cur[from - 1];
    for (let j = from; j <= to; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1), over);
      if (cur[j] < rowMin) rowMin = cur[j];
    }
    cur[to + 1] = over;
    if (rowMin > max) return over;
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** suggest.Search: the option closest to `value`, if any is close enough. */
export function suggest(value: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const val = caseSensitive ? value : value.toLowerCase();
  let match: string | undefined;
  let minDist = 3;
  // Inputs far longer than any option cannot be within distance 2; skip the quadratic work.
  if (val.length > 256) return undefined;
  const chars = Array.from(val);
  for (const o of options) {
    const opt = caseSensitive ? o : o.toLowerCase();
    if (val === opt) return undefined;
    const d = boundedLevenshtein(chars, Array.from(opt), minDist - 1);
    if (d < minDist) {
      match = caseSensitive ? opt : matchCase(opt, value);
      minDist = d;
    }
  }
  return match;
}

function matchCase(val: string, orig: string): string {
  if (orig === orig.toLowerCase()) return val.toLowerCase();
  if (orig === orig.toUpperCase()) return val.toUpperCase();
  return val;
}

/** suggest.WrapError: appends the hint to a message when there is one. */
export function withSuggestion(message: string, value: string, options: readonly string[], caseSensitive: boolean): string {
  const m = suggest(value, options, caseSensitive);
  return m === undefined ? message : `${message} (did you mean ${m}?)`;
}
