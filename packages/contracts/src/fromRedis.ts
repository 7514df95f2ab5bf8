import { z } from 'zod';

/** A value read back from Redis that does not have the shape its writer gives it. */
export class MalformedRedisDataError extends Error {
  constructor(readonly what: string, detail: string) {
    super(`${what} in Redis is malformed (${detail}): it was written by an incompatible Buildyard version or changed by hand; remove the key or upgrade every process to the same version`);
    this.name = 'MalformedRedisDataError';
  }
}

/** Validates data read back from Redis; throws one line naming what and where it is wrong. */
export function fromRedis<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue?.path.length ? issue.path.join('.') : 'value';
  throw new MalformedRedisDataError(what, `${where}: ${issue?.message ?? 'invalid'}`);
}

/** Parses JSON read back from Redis, then validates it. */
export function jsonFromRedis<S extends z.ZodType>(schema: S, text: string, what: string): z.output<S> {
  let value: unknown;
  try { value = JSON.parse(text); } catch (err) { throw new MalformedRedisDataError(what, `not JSON: ${(err as Error).message}`); }
  return fromRedis(schema, value, what);
}

/** A list of strings Redis holds as a JSON string in a hash field (absent or empty: none). */
export const jsonList = z.preprocess((v) => {
  if (v === undefined || v === '') return [];
  try { return typeof v === 'string' ? JSON.parse(v) : v; } catch { return v; }
}, z.array(z.string()));
