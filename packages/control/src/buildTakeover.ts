// What lets a build outlive the frontend coordinating it (issue 19, rolling restarts): the
// request it was started with stays in Redis while it runs, and a frontend that finds its
// coordinator gone claims the record and runs the build again from that request. Stages already
// done are in the scheduler's state and the cache, so the new coordinator only waits for the
// rest, then exports.
import type { RedisClient as Redis } from '@buildyard/contracts';
import { SolveRequest } from '@buildyard/proto';
import { luaCommands, type BuildSecrets, type LuaCommand, type RedisKeys } from '@buildyard/contracts';

const LUA_DIR = new URL('../lua/', import.meta.url);
const SCRIPTS = { claim: { files: ['claimBuild.lua'], keys: 1 } };

/** How long a stored request outlives a coordinator that never ends its build (as the sealed secrets). */
export const BUILD_REQUEST_TTL_MS = 24 * 3600 * 1000;

export class BuildRequests {
  private readonly scripts: Record<keyof typeof SCRIPTS, LuaCommand>;

  constructor(private readonly redis: Redis, private readonly keys: RedisKeys, private readonly secrets: BuildSecrets) {
    this.scripts = luaCommands(redis, 'buildyard_control', LUA_DIR, SCRIPTS);
  }

  /**
   * Keeps the request for a takeover. Secrets and registry logins never go into this key: the
   * runner seals them into the build's secrets key, from which load() puts them back.
   */
  async save(buildId: string, req: SolveRequest): Promise<void> {
    const plain = SolveRequest.encode({ ...req, secrets: [], registryAuth: [] }).finish();
    await this.redis.set(this.keys.buildRequest(buildId), Buffer.from(plain).toString('base64'), 'PX', BUILD_REQUEST_TTL_MS);
  }

  /** The request as the client sent it (secrets included), or undefined when none is kept. */
  async load(buildId: string): Promise<SolveRequest | undefined> {
    const raw = await this.redis.get(this.keys.buildRequest(buildId));
    if (!raw) return undefined;
    const req = SolveRequest.decode(Buffer.from(raw, 'base64'));
    const sealed = await this.secrets.get(buildId);
    return {
      ...req,
      secrets: Object.entries(sealed.secrets).map(([id, value]) => ({ id, value: Buffer.from(value, 'base64') })),
      registryAuth: sealed.registryAuth,
    };
  }

  async delete(buildId: string): Promise<void> {
    await this.redis.del(this.keys.buildRequest(buildId));
  }

  /** Makes `claimant` the coordinator of a queued or running build still recorded under `gone`; false when another frontend was first or the build ended. */
  async claim(buildId: string, gone: string, claimant: string): Promise<boolean> {
    return (await this.scripts.claim(this.keys.build(buildId), gone, claimant)) === 1;
  }
}

/** Thrown inside a runner whose build another frontend now coordinates (or will): it stops without recording an end. */
export class HandedOff extends Error {
  constructor() {
    super('the build was handed to another frontend');
    this.name = 'HandedOff';
  }
}
