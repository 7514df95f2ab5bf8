// The idle deadline of what the frontend reads from a client (limits.sessionIdleTimeoutMs): a
// client that opens an upload and then neither sends nor closes would otherwise hold the call,
// its buffers and writers, and its registered context write (which holds back context garbage
// collection for every tenant) for as long as it likes.

/** The default of limits.sessionIdleTimeoutMs: BuildKit's session health check gives up on a silent client within about a minute too. */
export const SESSION_IDLE_TIMEOUT_MS = 60_000;

/** `60 s`, `200 ms`. */
function duration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`;
}

/**
 * The one line a transfer fails with when the client went silent: `what` says what it was
 * doing (`sending the build context "context"`); `read` is false when it was the client that
 * stopped taking what the frontend sends.
 */
export function clientIdleMessage(ms: number, what: string, read = true): string {
  return `the client ${read ? 'sent' : 'took'} nothing for ${duration(ms)} while ${what}, so the builder cancelled the transfer: check the client's connection and run the build again (limits.sessionIdleTimeoutMs)`;
}

/**
 * The next value of `next()`, or `onIdle()`'s error once `ms` pass without one. The deadline
 * runs only while this waits, so time the server spends on what it received does not count.
 */
export async function withinIdle<T>(next: Promise<T>, ms: number, onIdle: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const idle = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(onIdle()), ms); });
  try {
    return await Promise.race([next, idle]);
  } finally {
    clearTimeout(timer);
  }
}
