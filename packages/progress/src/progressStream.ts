import { DEFAULT_KEYS, type RedisKeys } from '@buildyard/contracts';

/** The Redis stream holding one build's events. */
export function progressStreamKey(buildId: string, keys: RedisKeys = DEFAULT_KEYS): string {
  return keys.progress(buildId);
}

/** Stream field names: `e` holds an encoded event, `end` marks the end of the build's events. */
export const EVENT_FIELD = 'e';
export const END_FIELD = 'end';
