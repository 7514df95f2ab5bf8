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
