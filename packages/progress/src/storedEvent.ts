// Reading events back from the Redis stream: the stored form (log data as base64) validated with
// zod. Apart from ProgressEvent.ts, which the CLI loads to render progress, so zod stays on the
// readers' side (frontend, history).
import { z } from 'zod';
import { jsonFromRedis } from '@buildyard/contracts';
import type { ProgressEvent } from './ProgressEvent.js';

const vertexRef = z.object({
  digest: z.string(), name: z.string(), platform: z.string(), stage: z.string(), step: z.number(), steps: z.number(), workerId: z.string(), emulated: z.boolean(), line: z.number().optional(),
});
const at = { timestampMs: z.number() };
const optional = { file: z.string().optional(), line: z.number().optional() };

/** An event as stored in the stream (log data as base64); readers validate before use. */
export const storedProgressEventSchema = z.discriminatedUnion('type', [
  z.object({ ...at, type: z.literal('build.accepted'), buildId: z.string(), platforms: z.array(z.string()) }),
  z.object({ ...at, type: z.literal('vertex.started'), vertex: vertexRef, startedMs: z.number() }),
  z.object({ ...at, type: z.literal('vertex.cached'), vertex: vertexRef }),
  z.object({ ...at, type: z.literal('vertex.progress'), vertex: vertexRef, startedMs: z.number(), currentBytes: z.number(), totalBytes: z.number() }),
  z.object({ ...at, type: z.literal('vertex.status'), vertex: vertexRef, status: z.string(), startedMs: z.number(), completedMs: z.number().optional() }),
  z.object({ ...at, type: z.literal('vertex.log'), digest: z.string(), stream: z.union([z.literal(1), z.literal(2)]), data: z.string(), truncated: z.boolean() }),
  z.object({ ...at, type: z.literal('vertex.finished'), vertex: vertexRef, startedMs: z.number(), completedMs: z.number(), durationMs: z.number() }),
  z.object({ ...at, type: z.literal('vertex.error'), vertex: vertexRef, startedMs: z.number(), completedMs: z.number(), error: z.string() }),
  z.object({
    ...at, type: z.literal('build.result'), buildId: z.string(), digest: z.string(), pushed: z.array(z.string()), metadata: z.record(z.string(), z.string()),
    images: z.array(z.object({ platform: z.string(), manifestDigest: z.string(), configDigest: z.string() })),
    verticesTotal: z.number(), verticesCached: z.number(), durationMs: z.number(),
  }),
  z.object({ ...at, type: z.literal('build.error'), message: z.string(), vertex: z.string().optional(), code: z.string().optional(), ...optional }),
  z.object({ ...at, type: z.literal('build.warning'), message: z.string(), ...optional }),
]);

export function decodeEvent(json: string): ProgressEvent {
  const raw = jsonFromRedis(storedProgressEventSchema, json, 'a progress event');
  if (raw.type === 'vertex.log') return { ...raw, data: Buffer.from(raw.data, 'base64') };
  return raw;
}
