/**
 * Polls `cond` until it holds, for tests that wait on a condition rather than on elapsed time.
 * The deadline only bounds a hang: it fails the wait with `what`, so make it generous.
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000, everyMs = 20): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * `p`, or a failure naming `what` once `ms` passed without it: a hang becomes a failure with
 * its own words (and the test's diagnostics) instead of a file the run's guard stops. Generous too.
 */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
