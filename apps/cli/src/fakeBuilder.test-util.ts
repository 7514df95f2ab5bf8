// A test double of OUR OWN frontend: a real gRPC Control server on 127.0.0.1 that replays a
// recorded SolveEvent sequence, plus the real ContextSync handler over a temp ContextStore.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, status, Metadata, type ServerDuplexStream, type ServerWritableStream, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { ContextStore, handleSync } from '@buildyard/context';
import {
  ContextSyncService, ControlService,
  type SolveEvent, type SolveRequest, type SyncRequest, type SyncResponse, type WorkerInfo,
} from '@buildyard/proto';

export interface FakeBuilderOptions {
  /** Events of each Solve, sent with `delayMs` between them. */
  events: SolveEvent[];
  delayMs?: number;
  /** Keep the Solve stream open after the events (to test cancellation). */
  hang?: boolean;
  token?: string;
  workers?: WorkerInfo[];
  /** Serve TLS with this certificate (endpoint tls://…) instead of plaintext. */
  tls?: { cert: Buffer; key: Buffer };
}

export interface FakeBuilder {
  endpoint: string;
  requests: SolveRequest[];
  contexts: string[];
  cancelled: number;
  options: FakeBuilderOptions;
  stop(): Promise<void>;
}

function authorized(md: Metadata, token?: string): boolean {
  return !token || md.get('authorization')[0] === `Bearer ${token}`;
}

const denied = { code: status.UNAUTHENTICATED, details: 'invalid bearer token: check the token given to this builder' };

export async function startFakeBuilder(options: FakeBuilderOptions): Promise<FakeBuilder> {
  const root = await mkdtemp(join(tmpdir(), 'buildyard-fake-builder-'));
  const store = new ContextStore({ root });
  const server = new Server();
  const fake: FakeBuilder = { endpoint: '', requests: [], contexts: [], cancelled: 0, options, stop: async () => {} };
  const unary = <Req, Res>(res: Res) => (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
    if (!authorized(call.metadata, options.token)) cb(Object.assign(new Error(denied.details), denied), null);
    else cb(null, res);
  };
  server.addService(ControlService, {
    solve: async (call: ServerWritableStream<SolveRequest, SolveEvent>) => {
      if (!authorized(call.metadata, options.token)) { call.emit('error', Object.assign(new Error(denied.details), denied)); return; }
      fake.requests.push(call.request);
      let cancelled = false;
      call.on('cancelled', () => { cancelled = true; fake.cancelled++; });
      // Recorded timestamps are moved to now, as a live server's clock would be: all by the same
      // amount (a clock read per event made a vertex's start move between its updates, and the
      // time of a log line after it, 0.100 s, read as 0.099 s when a millisecond passed).
      const first = options.events[0]?.timestampMs ?? 0;
      const now = Date.now();
      const shift = (ms: number) => (ms ? ms - first + now : 0);
      for (const recorded of options.events) {
        if (cancelled) return;
        const ev: SolveEvent = { ...recorded, timestampMs: shift(recorded.timestampMs) };
        if (ev.vertex) ev.vertex = { ...ev.vertex, startedMs: shift(ev.vertex.startedMs), completedMs: shift(ev.vertex.completedMs) };
        call.write(ev);
        if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      }
      if (!options.hang) call.end();
    },
    attach: (call: ServerWritableStream<unknown, SolveEvent>) => call.end(),
    cancel: unary({ cancelled: true }),
    status: unary({ builds: [] }),
    listWorkers: unary({ workers: options.workers ?? [] }),
    diskUsage: unary({ records: [{ id: 'sha256:aaa', description: 'layer', size: 2_500_000, lastUsedMs: 0, usageCount: 1, inUse: false, shared: false }], totalBytes: 2_500_000, reclaimableBytes: 2_500_000 }),
    prune: unary({ removed: [{ id: 'sha256:aaa', description: 'layer', size: 2_500_000, lastUsedMs: 0, usageCount: 1, inUse: false, shared: false }], reclaimedBytes: 2_500_000 }),
    info: unary({ version: 'fake-1', nativePlatforms: ['linux/amd64'], emulatedPlatforms: ['linux/arm64'], workers: (options.workers ?? []).length, tenant: 'test' }),
  });
  server.addService(ContextSyncService, {
    sync: (call: ServerDuplexStream<SyncRequest, SyncResponse>) => {
      handleSync(call, store, { tenant: 'test' }).then((r) => fake.contexts.push(r.contextId), () => {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', options.tls ? ServerCredentials.createSsl(null, [{ cert_chain: options.tls.cert, private_key: options.tls.key }]) : ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  fake.endpoint = `${options.tls ? 'tls' : 'tcp'}://127.0.0.1:${port}`;
  fake.stop = async () => {
    server.forceShutdown();
    await rm(root, { recursive: true, force: true });
  };
  return fake;
}
