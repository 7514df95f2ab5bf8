// A real gRPC ContextSync server on 127.0.0.1 for tests, recording each handleSync outcome.
import { Server, ServerCredentials, credentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { ContextSyncClient, ContextSyncService, type SyncRequest, type SyncResponse } from '@buildyard/proto';
import { handleSync, type HandleSyncResult } from './handleSync.js';
import type { ContextStore } from './ContextStore.js';

export interface TestSyncServer {
  client: ContextSyncClient;
  results: HandleSyncResult[];
  errors: Error[];
  stop(): Promise<void>;
}

export async function startSyncServer(store: ContextStore, tenant = 'test'): Promise<TestSyncServer> {
  const server = new Server();
  const results: HandleSyncResult[] = [];
  const errors: Error[] = [];
  server.addService(ContextSyncService, {
    sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
      handleSync(call, store, { tenant }).then((r) => results.push(r), (e: Error) => errors.push(e));
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
