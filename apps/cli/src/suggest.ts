// "Did you mean" hints that only name a flag or command the user plausibly mistyped.
// Commander's own hints accept up to 60% of a word changed, so `--ssh` became "did you mean
// --push?" and `--iidfile` "--file?": a hint that names an unrelated flag misleads more than
// no hint. Here a candidate must be within a quarter of the typed word's length (at least one
// edit), which keeps typos (--platfrom, --bulid-arg, --tga) and drops unrelated words.
import { Command } from 'commander';

/** Optimal string alignment distance: Levenshtein plus swapping two adjacent characters. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest candidates within max(1, len/4) edits of `word` (compared without leading dashes). */
export function suggest(word: string, candidates: readonly string[]): string[] {
  const bare = (s: string) => s.replace(/^-+/, '');
  const w = bare(word);
  const limit = Math.max(1, Math.floor(w.length / 4));
  let best = limit + 1;
  let found: string[] = [];
  for (const c of new Set(candidates)) {
    const dist = editDistance(w, bare(c));
    if (dist > limit) continue;
    if (dist < best) { best = dist; found = [c]; } else if (dist === best) found.push(c);
  }
  return found;
}

function hint(found: string[]): string {
  return found.length ? `\n(Did you mean ${found.join(' or ')}?)` : '';
}

/** A commander Command whose unknown-option and unknown-command errors carry suggest()'s hints. */
export class BuildyardCommand extends Command {
  override createCommand(name?: string): BuildyardCommand {
    return new BuildyardCommand(name);
  }

  // Overrides commander's (undeclared) unknownOption: same message and code, stricter hint.
  unknownOption(flag: string): never {
    const candidates: string[] = [];
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    for (let cmd: Command | null = this; cmd; cmd = cmd.parent) {
      for (const o of cmd.createHelp().visibleOptions(cmd)) if (o.long) candidates.push(o.long);
    }
    const found = flag.startsWith('--') ? suggest(flag, candidates) : [];
    this.error(`error: unknown option '${flag}'${hint(found)}`, { code: 'commander.unknownOption' });
  }

  // Overrides commander's (undeclared) unknownCommand.
  unknownCommand(): never {
    const name = this.args[0] ?? '';
    const candidates = this.createHelp().visibleCommands(this).flatMap((c) => [c.name(), ...c.aliases()]);
    this.error(`error: unknown command '${name}'${hint(suggest(name, candidates))}`, { code: 'commander.unknownCommand' });
  }
}
