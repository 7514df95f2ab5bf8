// Parses COPY/ADD --chmod: octal ("755", "0644", "4755") or symbolic ("u+x,g-w", "a=rX"), the two
// forms BuildKit accepts. Hand-written: it is chmod(1)'s small grammar and no npm package
// implements X and permission copying (u=g) the way coreutils does.
import { FileOpError } from './FileOpError.js';

/** Computes the new permission bits (incl. setuid/setgid/sticky) from the current ones. */
export type ModeTransform = (currentMode: number, isDirectory: boolean) => number;

export function parseChmod(spec: string): ModeTransform {
  const s = spec.trim();
  if (/^[0-7]+$/.test(s) && parseInt(s, 8) <= 0o7777) {
    const mode = parseInt(s, 8);
    return () => mode;
  }
  const clauses = s.split(',');
  const ops: Array<(mode: number, isDir: boolean) => number> = [];
  for (const clause of clauses) {
    const m = /^([ugoa]*)((?:[-+=][rwxXstugo]*)+)$/.exec(clause);
    if (!m) throw new FileOpError('EBADCHMOD', `invalid --chmod "${spec}": use octal like 755 or symbolic like u+x,g-w`);
    const who = m[1] === '' || m[1].includes('a') ? 'ugo' : m[1];
    const actions = m[2].match(/[-+=][rwxXstugo]*/g) ?? [];
    for (const action of actions) ops.push(symbolicAction(who, action[0], action.slice(1), spec));
  }
  return (current, isDir) => ops.reduce((mode, op) => op(mode, isDir), current & 0o7777);
}

const SHIFT: Record<string, number> = { u: 6, g: 3, o: 0 };

function symbolicAction(who: string, op: string, perms: string, spec: string): (mode: number, isDir: boolean) => number {
  if (/[ugo]/.test(perms) && perms.length !== 1) {
    throw new FileOpError('EBADCHMOD', `invalid --chmod "${spec}": copy from one class only, like g=u`);
  }
  return (mode, isDir) => {
    let bits = 0;
    for (const p of perms) {
      if (p === 'u' || p === 'g' || p === 'o') {
        const rwx = (mode >> SHIFT[p]) & 7;
        for (const w of who) bits |= rwx << SHIFT[w];
        continue;
      }
      for (const w of who) {
        const shift = SHIFT[w];
        if (p === 'r') bits |= 4 << shift;
        else if (p === 'w') bits |= 2 << shift;
        else if (p === 'x') bits |= 1 << shift;
        else if (p === 'X') { if (isDir || (mode & 0o111) !== 0) bits |= 1 << shift; }
        else if (p === 's') { if (w === 'u') bits |= 0o4000; if (w === 'g') bits |= 0o2000; }
        else if (p === 't') { if (w === 'o') bits |= 0o1000; }
      }
    }
    if (op === '+') return mode | bits;
    if (op === '-') return mode & ~bits;
    // '=': clear the named classes' rwx (and their special bit), then set.
    let clear = 0;
    for (const w of who) {
      clear |= 7 << SHIFT[w];
      if (w === 'u') clear |= 0o4000;
      if (w === 'g') clear |= 0o2000;
      if (w === 'o') clear |= 0o1000;
    }
    return (mode & ~clear) | bits;
  };
}
