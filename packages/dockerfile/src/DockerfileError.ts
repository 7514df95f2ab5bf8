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
