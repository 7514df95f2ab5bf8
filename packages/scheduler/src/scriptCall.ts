// Calls a scheduler script with every key it touches declared (prelude.lua): the keys the caller
// knows, then, while the script answers {'?keys', labels...} (it found it needs keys it was not
// given, and changed nothing), again with those added.
import type { LuaCommand } from '@buildyard/contracts';
import { labelKey, type SchedulerKeys } from './keys.js';

/** A script's arguments: the fixed keys, the labelled ones, then prefix, time, the labels and `args`. */
export function scriptArgs(keys: SchedulerKeys, fixed: string[], labels: string[], args: Array<string | number>): Array<string | number> {
  return [fixed.length + labels.length, ...fixed, ...labels.map((l) => labelKey(keys, l)), keys.base, Date.now(), labels.join('\n'), ...args];
}

/** The arguments of a script that takes its own keys by position (w_view, w_wake): no labels. */
export function positionalArgs(keys: SchedulerKeys, fixed: string[], own: string[], args: Array<string | number>): Array<string | number> {
  return [fixed.length + own.length, ...fixed, ...own, keys.base, Date.now(), '', ...args];
}

export function askedKeys(reply: unknown): string[] | undefined {
  return Array.isArray(reply) && reply[0] === '?keys' ? (reply.slice(1) as string[]) : undefined;
}

/**
 * The script's answer, every label the last call declared (callers remember them as hints) and
 * how many calls it took (1: the state it answered on is the state the first call found).
 * The first call is sent before this returns its promise (no await before it), so a caller may
 * send a command that must run after it, on the same connection, without waiting.
 */
export async function callDeclared(
  cmd: LuaCommand, name: string, keys: SchedulerKeys, fixed: string[], labels: Iterable<string>, args: Array<string | number>,
): Promise<{ reply: unknown; labels: Set<string>; calls: number }> {
  const all = new Set(labels);
  for (let round = 1; ; round++) {
    const reply = await cmd(...scriptArgs(keys, fixed, [...all], args));
    const asked = askedKeys(reply);
    if (!asked) return { reply, labels: all, calls: round };
    const before = all.size;
    for (const l of asked) all.add(l);
    // Each call asks only for keys it was not given: no growth would be a script bug, not a race.
    if (round >= 32) throw new Error(`scheduler script ${name} still asked for keys after ${round} calls (state changing under it); try again`);
    if (all.size === before) throw new Error(`scheduler script ${name} asked again for keys it was given (${asked.slice(0, 5).join(', ')}); report this as a scheduler bug`);
  }
}
