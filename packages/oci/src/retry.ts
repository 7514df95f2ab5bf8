import { setTimeout as sleep } from 'node:timers/promises';

export interface RetryOptions {
  attempts: number;
  /** First backoff delay, doubled after each failed attempt. */
  backoffMs: number;
  /** Aborting stops the backoff at once; an error thrown while aborted is passed through. */
  signal?: AbortSignal;
  /** Errors retrying cannot fix (wrong bytes, auth, 4xx): thrown at once. */
  fatal?(err: unknown): boolean;
}

/** One attempt's outcome: a value, or the reason it is worth trying again (e.g. HTTP 503). */
export type Attempt<T> = { value: T } | { retry: string };

/** Every attempt failed; `last` says how the last one did. */
export class RetriesExhaustedError extends Error {
  constructor(readonly attempts: number, readonly last: string) {
    super(`failed after ${attempts} attempts: ${last}`);
    this.name = 'RetriesExhaustedError';
  }
}

/** The message of a network error including its cause (`fetch failed: connect ECONNREFUSED …`). */
export function describeError(err: unknown): string {
  const e = err as Error & { cause?: Error };
  return e?.cause?.message ? `${e.message}: ${e.cause.message}` : String(e?.message ?? err);
}

/**
 * The one retry loop: runs `fn` up to `attempts` times with exponential backoff while it asks
 * to retry or throws a non-fatal error; the caller turns RetriesExhaustedError into its own
 * one-line error naming what failed where.
 */
export async function withRetries<T>(opts: RetryOptions, fn: (attempt: number) => Promise<Attempt<T>>): Promise<T> {
  let last = '';
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    try {
      const out = await fn(attempt);
      if (!('retry' in out)) return out.value;
      last = out.retry;
    } catch (err) {
      if (opts.signal?.aborted || opts.fatal?.(err)) throw err;
      last = describeError(err);
    }
    if (attempt < opts.attempts) await sleep(opts.backoffMs * 2 ** (attempt - 1), undefined, { signal: opts.signal });
  }
  throw new RetriesExhaustedError(opts.attempts, last);
}
