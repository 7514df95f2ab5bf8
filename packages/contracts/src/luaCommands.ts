import { readFileSync } from 'node:fs';
import type { RedisClient } from './redisClient.js';

export interface LuaScript {
  /** Files under `dir`, concatenated (a shared prelude first, then the script). */
  files: string[];
  /**
   * How many leading arguments are keys (KEYS[]); the rest are ARGV. 'dynamic': the call's first
   * argument is that number (a script whose keys depend on its input declares them all).
   */
  keys: number | 'dynamic';
}

export type LuaCommand = (...args: Array<string | number>) => Promise<unknown>;

/**
 * Lua scripts kept as .lua files, registered on a connection with ioredis' defineCommand (which
 * runs them by EVALSHA and reloads them when Redis lost its script cache). Names are namespaced
 * by `namespace` so packages sharing a connection never collide.
 */
export function luaCommands<N extends string>(redis: RedisClient, namespace: string, dir: URL, scripts: Record<N, LuaScript>): Record<N, LuaCommand> {
  const out = {} as Record<N, LuaCommand>;
  const commands = redis as unknown as Record<string, LuaCommand>;
  for (const [name, script] of Object.entries(scripts) as Array<[N, LuaScript]>) {
    const command = `${namespace}_${name}`;
    if (typeof commands[command] !== 'function') {
      const lua = script.files.map((f) => readFileSync(new URL(f, dir), 'utf8')).join('\n');
      redis.defineCommand(command, script.keys === 'dynamic' ? { lua } : { numberOfKeys: script.keys, lua });
    }
    out[name] = (...args) => commands[command].apply(redis, args.map(String));
  }
  return out;
}
