// A real gRPC ContextSync server on 127.0.0.1 for tests, recording each handleSync outcome.
import { Server, ServerCredentials, credentials, type ServerDuplexStream, type ServiceError } from '@grpc/grpc-js';
import { ContextSyncClient, ContextSyncService, type SyncRequest, type SyncResponse } from '@buildyard/proto';
import { handleSync, type HandleSyncResult } from './handleSync.js';
import type { ContextStore } from './ContextStore.js';

export interface TestSyncServer {
  client: ContextSyncClient;
  results: HandleSyncResult[];
  errors: Error[];
  stop(): Promise<void>;
}

/** `idleTimeoutMs`: the frontend's limits.sessionIdleTimeoutMs (handleSync's 60 s when absent). */
export async function startSyncServer(store: ContextStore, tenant = 'test', opts: { idleTimeoutMs?: number } = {}): Promise<TestSyncServer> {
  const server = new Server();
  const results: HandleSyncResult[] = [];
  const errors: Error[] = [];
  server.addService(ContextSyncService, {
    sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
      handleSync(call, store, { tenant, idleTimeoutMs: opts.idleTimeoutMs }).then((r) => results.push(r), (e: Error) => errors.push(e));
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const client = new ContextSyncClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return {
    client,
    results,
    errors,
    stop: async () => {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

/** A ContextSync as an attacker writes it; `reply` answers missing_done. */
export async function rawSync(server: TestSyncServer, msgs: SyncRequest[], reply: (missing: string[]) => SyncRequest[] = () => [{ uploadDone: true }]) {
  const call = server.client.sync();
  for (const m of msgs) call.write(m);
  const out: { baseUnknown: boolean; missing: string[]; contextId?: string; error?: ServiceError } = { baseUnknown: false, missing: [] };
  try {
    for await (const res of call as AsyncIterable<SyncResponse>) {
      if (res.baseUnknown) out.baseUnknown = true;
      if (res.missing) out.missing.push(...res.missing.digests);
      if (res.missingDone) { for (const m of reply(out.missing)) call.write(m); call.end(); }
      if (res.complete) out.contextId = res.complete.contextId;
    }
  } catch (err) {
    out.error = err as ServiceError;
  }
  return out;
}
