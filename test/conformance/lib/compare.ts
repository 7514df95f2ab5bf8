// Differences between an expected and an actual Result, one line each, for test output.
import type { Result } from './types.js';

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
    const e = JSON.stringify(ec[k]);
    const a = JSON.stringify(ac[k]);
    if (e !== a) out.push(`config.${k}: expected ${e}, got ${a}`);
  }
  const eh = expected.history ?? [];
  const ah = actual.history ?? [];
  for (let i = 0; i < Math.max(eh.length, ah.length); i++) {
    const e = JSON.stringify(eh[i]);
    const a = JSON.stringify(ah[i]);
    if (e !== a) out.push(`history[${i}]: expected ${e}, got ${a}`);
  }
  const ef = new Map((expected.files ?? []).map((f) => [f.path, JSON.stringify(f)]));
  const af = new Map((actual.files ?? []).map((f) => [f.path, JSON.stringify(f)]));
  for (const p of [...new Set([...ef.keys(), ...af.keys()])].sort()) {
    if (ef.get(p) !== af.get(p)) out.push(`file ${p}: expected ${ef.get(p) ?? 'absent'}, got ${af.get(p) ?? 'absent'}`);
  }
  if (JSON.stringify(expected.whiteouts ?? []) !== JSON.stringify(actual.whiteouts ?? [])) {
    out.push(`last-layer whiteouts: expected ${JSON.stringify(expected.whiteouts)}, got ${JSON.stringify(actual.whiteouts)}`);
  }
  return out;
}
