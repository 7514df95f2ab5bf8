// BuildKit's util/suggest: the "(did you mean X?)" hint. A candidate within Levenshtein
// distance 2 (strictly less than 3, as HCL does), the closest first; none on an exact match.

function levenshtein(a: string, b: string): number {
  const A = Array.from(a);
  const B = Array.from(b);
  let prev = Array.from({ length: B.length + 1 }, (_, j) => j);
  for (let i = 1; i <= A.length; i++) {
    const cur = [i];
    for (let j = 1; j <= B.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (A[i - 1] === B[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[B.length];
}

/** suggest.Search: the option closest to `value`, if any is close enough. */
export function suggest(value: string, options: readonly string[], caseSensitive: boolean): string | undefined {
  const val = caseSensitive ? value : value.toLowerCase();
  let match: string | undefined;
  let minDist = 3;
  // Inputs far longer than any option cannot be within distance 2; skip the quadratic work.
  if (val.length > 256) return undefined;
  for (const o of options) {
    const opt = caseSensitive ? o : o.toLowerCase();
    if (val === opt) return undefined;
    const d = levenshtein(val, opt);
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
