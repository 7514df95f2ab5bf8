// Build ids chosen by clients are names within their tenant. Whether another tenant already
// used the same name must not show in any answer (the old ALREADY_EXISTS did), so a name taken
// elsewhere gets an internal id of its own, `<name>.<random>` ('.' never appears in a client's
// id), and the client still sees only its name: in events, Status, Attach and Cancel. Claims
// are atomic (SET NX), so two tenants racing for one name never share a build record.
import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient as Redis } from '@buildyard/contracts';
import type { RedisKeys } from '@buildyard/contracts';
import type { SolveEvent } from '@buildyard/proto';

/** Same as the build records' retention: a name is taken while its build is remembered. */
const CLAIM_MS = 7 * 24 * 3600 * 1000;

const claimKey = (keys: RedisKeys, internalId: string) => `${keys.build(internalId)}:claim`;
const nameKey = (keys: RedisKeys, tenant: string, name: string) =>
  `${keys.build(name)}:name:${createHash('sha256').update(tenant).digest('hex').slice(0, 32)}`;

/**
 * Reserves `name` for `tenant` and answers the internal id of its build, or undefined when this
 * tenant already has a build of that name (the only case that answers ALREADY_EXISTS).
 */
export async function claimBuildId(redis: Redis, keys: RedisKeys, tenant: string, name: string, existing: (id: string) => Promise<{ tenant: string } | undefined>, claimMs = CLAIM_MS): Promise<string | undefined> {
  if ((await redis.set(nameKey(keys, tenant, name), name, 'PX', claimMs, 'NX')) !== 'OK') return undefined;
  // Builds recorded before names were claimed have a record but no claim: they hold their id too.
  const before = await existing(name);
  if (before?.tenant === tenant) return undefined;
  let id = name;
  if (before || (await redis.set(claimKey(keys, name), tenant, 'PX', claimMs, 'NX')) !== 'OK') {
    id = `${name}.${randomBytes(8).toString('hex')}`;
    await redis.set(claimKey(keys, id), tenant, 'PX', claimMs);
  }
  await redis.set(nameKey(keys, tenant, name), id, 'PX', claimMs);
  return id;
}

/** Frees the name of a removed build (history rm): the tenant may use it again. */
export async function releaseBuildId(redis: Redis, keys: RedisKeys, tenant: string, internalId: string): Promise<void> {
  const name = shownBuildId(internalId);
  // Only when the name still stands for this build: a newer build of the name keeps it.
  if ((await redis.get(nameKey(keys, tenant, name))) === internalId) await redis.del(nameKey(keys, tenant, name));
  await redis.del(claimKey(keys, internalId));
}

/** The internal id this tenant's `name` stands for (itself when it never needed another). */
export async function internalBuildId(redis: Redis, keys: RedisKeys, tenant: string, name: string): Promise<string> {
  if (!name) return name;
  return (await redis.get(nameKey(keys, tenant, name))) ?? name;
}

/** What the client sees of an internal id: its own name. */
export function shownBuildId(internalId: string): string {
  const dot = internalId.indexOf('.');
  return dot < 0 ? internalId : internalId.slice(0, dot);
}

/** A progress event as its client sees it: build ids are its own names. */
export function shownIds(event: SolveEvent): SolveEvent {
  if (event.accepted) return { ...event, accepted: { ...event.accepted, buildId: shownBuildId(event.accepted.buildId) } };
  if (event.result) return { ...event, result: { ...event.result, buildId: shownBuildId(event.result.buildId) } };
  return event;
}
