// A minimal client for e2e tests of the service itself (the CLI has its own e2e tests):
// syncs a context and runs Solve over real gRPC, collecting every event.
import { credentials, Metadata } from '@grpc/grpc-js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { resolveBuildInput } from '@buildyard/client';
import { syncContext } from '@buildyard/context';
import { readXattrs } from '@buildyard/snapshot';
import { ContextSyncClient, ControlClient, SolveRequest, type SolveEvent } from '@buildyard/proto';
import type { Cluster } from '@buildyard/testkit';

export function bearer(token: string): Metadata {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

export interface SolveOutcome {
  events: SolveEvent[];
  result?: SolveEvent['result'];
  error?: SolveEvent['error'];
  bytesUploaded: number;
  logs: string;
}

export async function solve(cluster: Pick<Cluster, 'address' | 'token'>, contextDir: string, request: Partial<SolveRequest>, options: { token?: string; onEvent?(e: SolveEvent): void; metadata?: Record<string, string> } = {}): Promise<SolveOutcome> {
  const token = options.token ?? cluster.token;
  const sync = new ContextSyncClient(cluster.address, credentials.createInsecure());
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    // The Dockerfile and .dockerignore as the CLI picks them (`<Dockerfile>.dockerignore` first):
    // the named Dockerfile when the context holds it, else the request's as with `-f -`.
    const named = join(contextDir, request.dockerfileName || 'Dockerfile');
    const file = existsSync(named) ? named : request.dockerfile ? '-' : undefined;
    const input = await resolveBuildInput({ context: contextDir, cwd: contextDir, file, stdin: Readable.from([request.dockerfile ?? Buffer.alloc(0)]) });
    // Files' own extended attributes go as the CLI sends them (the snapshot addon's llistxattr).
    const synced = await syncContext(sync, contextDir, { dockerignore: input.dockerignorePatterns, metadata: bearer(token), cacheDir: false, readXattrs });
    const events: SolveEvent[] = [];
    const md = bearer(token);
    for (const [k, v] of Object.entries(options.metadata ?? {})) md.set(k, v);
    const stream = control.solve(SolveRequest.fromPartial({
      dockerfile: input.dockerfile, dockerfileName: 'Dockerfile', contextId: synced.contextId, ...request,
    }), md);
    for await (const event of stream) { events.push(event as SolveEvent); options.onEvent?.(event as SolveEvent); }
    const logs = events.filter((e) => e.log).map((e) => Buffer.from(e.log!.data).toString()).join('');
    return { events, result: events.find((e) => e.result)?.result, error: events.find((e) => e.error)?.error, bytesUploaded: synced.bytesUploaded, logs };
  } finally {
    sync.close();
    control.close();
  }
}

/** Per vertex name: the last status seen (started/completed times, worker, cached). */
export function vertexSummary(events: SolveEvent[]): Map<string, NonNullable<SolveEvent['vertex']>> {
  const byKey = new Map<string, NonNullable<SolveEvent['vertex']>>();
  for (const e of events) {
    if (!e.vertex) continue;
    const key = `${e.vertex.platform} ${e.vertex.name}`;
    byKey.set(key, { ...byKey.get(key), ...Object.fromEntries(Object.entries(e.vertex).filter(([, v]) => v !== '' && v !== 0 && v !== false)) } as NonNullable<SolveEvent['vertex']>);
  }
  return byKey;
}
