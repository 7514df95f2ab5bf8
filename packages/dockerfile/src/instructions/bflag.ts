// BuildKit's instructions/bflag.go: the flags each instruction accepts and how `--name[=value]`
// words are checked, with BuildKit's messages (users search for them).
import { withSuggestion } from './suggest.js';

export type FlagType = 'bool' | 'string' | 'strings';

/** Flags per instruction, in BuildKit's stable channel (current master). */
export const INSTRUCTION_FLAGS: Record<string, Record<string, FlagType>> = {
  FROM: { platform: 'string' },
  RUN: { mount: 'strings', network: 'string', security: 'string' },
  ADD: { chown: 'string', chmod: 'string', checksum: 'string', 'keep-git-dir': 'bool', link: 'bool', exclude: 'strings', unpack: 'bool' },
  COPY: { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' },
  HEALTHCHECK: { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' },
};

export interface ParsedFlag {
  name: string;
  /** Undefined for a bare boolean flag such as `--link`. */
  value: string | undefined;
}

export class FlagError extends Error {}

/**
 * BFlags.Parse over the flag words of one instruction (each `--name` or `--name=value`); throws
 * FlagError with BuildKit's wording. Returns the flags in the order given.
 */
export function parseFlags(keyword: string, words: readonly string[]): ParsedFlag[] {
  const allowed = INSTRUCTION_FLAGS[keyword] ?? {};
  const used = new Set<string>();
  const out: ParsedFlag[] = [];
  for (const a of words) {
    if (a === '--') break;
    if (!a.startsWith('--')) throw new FlagError(`arg should start with -- : ${a}`);
    const eq = a.indexOf('=');
    const flagName = eq < 0 ? a : a.slice(0, eq);
    const value = eq < 0 ? undefined : a.slice(eq + 1);
    const name = flagName.slice(2);
    const type = Object.prototype.hasOwnProperty.call(allowed, name) ? allowed[name] : undefined;
    if (!type) throw new FlagError(withSuggestion(`unknown flag: ${flagName}`, name, Object.keys(allowed), true));
    if (used.has(name) && type !== 'strings') throw new FlagError(`duplicate flag specified: ${flagName}`);
    used.add(name);
    if (type === 'bool') {
      if (value === '') throw new FlagError(`missing a value on flag: ${flagName}`);
      if (value !== undefined && !/^(true|false)$/i.test(value)) throw new FlagError(`expecting boolean value for flag ${flagName}, not: ${value}`);
    } else if (value === undefined) {
      throw new FlagError(`missing a value on flag: ${flagName}`);
    }
    out.push({ name, value });
  }
  return out;
}

/** The value of a string flag, if given. */
export function flagValue(flags: readonly ParsedFlag[], name: string): string | undefined {
  return flags.find((f) => f.name === name)?.value;
}

/** A boolean flag: `--x` or `--x=true` is true. */
export function flagBool(flags: readonly ParsedFlag[], name: string): boolean {
  const f = flags.find((x) => x.name === name);
  return f !== undefined && (f.value === undefined || f.value.toLowerCase() === 'true');
}

/** Every value of a repeatable flag, in order. */
export function flagValues(flags: readonly ParsedFlag[], name: string): string[] {
  return flags.filter((f) => f.name === name).map((f) => f.value ?? '');
}
