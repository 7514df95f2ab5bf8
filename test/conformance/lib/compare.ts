// Differences between an expected and an actual Result, one line each, for test output.
import type { Result } from './types.js';

/** JSON with every object's keys sorted: a hand-patched expectation may add a field out of order. */
function canonical(value: unknown): string | undefined {
  return JSON.stringify(value, (_key, v: unknown) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
    : v));
}

export function compareResults(expected: Result, actual: Result): string[] {
  const out: string[] = [];
  if (expected.ok !== actual.ok) {
    out.push(expected.ok ? `expected success, got error: ${actual.error}` : `expected error "${expected.error}", but the build succeeded`);
    return out;
  }
  if (!expected.ok) {
    // A message may add a hint after BuildKit's words, never change them.
    if (!(actual.error ?? '').includes(expected.error ?? '')) out.push(`error text differs:\n    expected: ${expected.error}\n    actual:   ${actual.error}`);
    return out;
  }
  if (expected.layers !== actual.layers) out.push(`layer count: expected ${expected.layers}, got ${actual.layers}`);
  const ec = expected.config ?? {};
  const ac = actual.config ?? {};
  for (const k of new Set([...Object.keys(ec), ...Object.keys(ac)]) as Set<keyof typeof ec>) {
    const e = canonical(ec[k]);
    const a = canonical(ac[k]);
    if (e !== a) out.push(`config.${k}: expected ${e}, got ${a}`);
  }
  const eh = expected.history ?? [];
  const ah = actual.history ?? [];
  for (let i = 0; i < Math.max(eh.length, ah.length); i++) {
    const e = canonical(eh[i]);
    const a = canonical(ah[i]);
    if (e !== a) out.push(`history[${i}]: expected ${e}, got ${a}`);
  }
  const ef = new Map((expected.files ?? []).map((f) => [f.path, canonical(f)]));
  const af = new Map((actual.files ?? []).map((f) => [f.path, canonical(f)]));
  for (const p of [...new Set([...ef.keys(), ...af.keys()])].sort()) {
    if (ef.get(p) !== af.get(p)) out.push(`file ${p}: expected ${ef.get(p) ?? 'absent'}, got ${af.get(p) ?? 'absent'}`);
  }
  if (canonical(expected.whiteouts ?? []) !== canonical(actual.whiteouts ?? [])) {
    out.push(`last-layer whiteouts: expected ${canonical(expected.whiteouts)}, got ${canonical(actual.whiteouts)}`);
  }
  return out;
}
