/**
 * An error in a Dockerfile the user can act on. `message` reads
 * `Dockerfile:3: unknown instruction: FRM (did you mean FROM?)`.
 */
export class DockerfileError extends Error {
  readonly reason: string;
  constructor(
    reason: string,
    readonly line: number,
    readonly endLine: number = line,
    readonly file: string = 'Dockerfile',
  ) {
    // Every parser and planner error passes here, so this is where hostile input is cut short,
    // whatever path quoted it: a 1 MB word must not become a 1 MB, multi-line error.
    const short = oneLine(reason, 500);
    const shownFile = oneLine(file, 120);
    super(line > 0 ? `${shownFile}:${line}: ${short}` : `${shownFile}: ${short}`);
    this.name = 'DockerfileError';
    this.reason = short;
  }
}

/** Closest candidate by edit distance, for "did you mean" hints (none when too far). */
export function didYouMean(input: string, candidates: readonly string[]): string | undefined {
  const a = input.toLowerCase();
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(a, c.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = c;
    }
  }
  const limit = Math.max(1, Math.floor(a.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8 || a.length > 64 || b.length > 64) return 99;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      // Adjacent transposition (FORM -> FROM) costs one edit.
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The start of a user-supplied word for an error message: a 1 MB word must not become a 1 MB error. */
export function excerpt(text: string, max = 80): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

/**
 * `text` on one line and at most about `max` characters: the start and the end are kept (the
 * end often says what to do), the middle is replaced by a count of what was left out.
 */
export function oneLine(text: string, max: number): string {
  const flat = text.replace(/\r?\n/g, '\\n');
  if (flat.length <= max) return flat;
  const head = Math.floor(max * 0.6);
  const tail = Math.floor(max * 0.3);
  return `${flat.slice(0, head)}… (${flat.length - head - tail} chars left out) …${flat.slice(flat.length - tail)}`;
}
