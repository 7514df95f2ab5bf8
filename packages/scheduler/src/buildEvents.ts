import type { RedisClient } from './connectRedis.js';
import type { BuildEvent } from './types.js';

const TERMINAL = new Set(['build-done', 'build-failed', 'build-cancelled']);

export function isTerminalEvent(ev: BuildEvent): boolean {
  return TERMINAL.has(ev.type);
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return null;
  try { return JSON.parse(text); } catch { return text; }
}

/** Turns one entry of a build's event stream (written by the Lua scripts) into a BuildEvent. */
export function parseBuildEvent(buildId: string, id: string, flat: string[]): BuildEvent {
  const f: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) f[flat[i]] = flat[i + 1];
  const base = { id, at: Number(id.split('-')[0]), buildId };
  const stage = { ...base, platform: f.platform ?? '', stageId: f.stage ?? '' };
  switch (f.type) {
    case 'stage-queued': return { ...stage, type: 'stage-queued', queue: f.queue ?? '' };
    case 'stage-deduped': return { ...stage, type: 'stage-deduped', leader: f.leader ?? '' };
    case 'stage-started':
      return { ...stage, type: 'stage-started', worker: f.worker ?? '', emulated: f.emulated === '1', attempt: Number(f.attempt ?? 1) };
    case 'stage-completed': {
      const ev: BuildEvent = { ...stage, type: 'stage-completed', worker: f.worker ?? '', emulated: f.emulated === '1', result: parseJson(f.result) };
      if (f.dedupedFrom) ev.dedupedFrom = f.dedupedFrom;
      return ev;
    }
    case 'stage-failed': {
      const ev: BuildEvent = { ...stage, type: 'stage-failed', error: f.error ?? '' };
      if (f.worker) ev.worker = f.worker;
      if (f.dedupedFrom) ev.dedupedFrom = f.dedupedFrom;
      return ev;
    }
    case 'build-done': return { ...base, type: 'build-done' };
    case 'build-failed': return { ...base, type: 'build-failed', error: f.error ?? '' };
    case 'build-cancelled': return { ...base, type: 'build-cancelled', error: f.error ?? '' };
    default: throw new Error(`build ${buildId}: unknown event type "${f.type}" in its event stream (id ${id}); upgrade the scheduler`);
  }
}

/**
 * Follows a build's Redis stream on a dedicated (blocking) connection until the build ends.
 * `exists` lets the loop notice a build id that was never submitted instead of waiting forever.
 */
export async function* followBuildEvents(
  conn: RedisClient,
  key: string,
  buildId: string,
  opts: { from?: string; signal?: AbortSignal; blockMs?: number; exists: () => Promise<boolean> },
): AsyncGenerator<BuildEvent, void, undefined> {
  let last = opts.from ?? '0';
  let checked = false;
  while (!opts.signal?.aborted) {
    const res = (await conn.xread('COUNT', 200, 'BLOCK', opts.blockMs ?? 500, 'STREAMS', key, last)) as
      Array<[string, Array<[string, string[]]>]> | null;
    if (!res) {
      if (!checked && !(await opts.exists())) throw new Error(`build ${buildId} not found; check the build id`);
      checked = true;
      continue;
    }
    for (const [, entries] of res) {
      for (const [id, flat] of entries) {
        last = id;
        const ev = parseBuildEvent(buildId, id, flat);
        yield ev;
        if (isTerminalEvent(ev)) return;
      }
    }
  }
}
