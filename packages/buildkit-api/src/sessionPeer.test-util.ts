// A BuildKit client's session for tests, over real sockets: a gRPC server on 127.0.0.1 serves
// Control.Session through SessionManager (as BuildkitServer does), and the test's client opens
// that call and serves HTTP/2 on the bytes it carries, as buildctl's session does (grpchijack).
// The test answers each call the frontend makes on the session with its own handler.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { Duplex } from 'node:stream';
import { Metadata, Server, ServerCredentials, credentials, type ClientDuplexStream, type ServerDuplexStream } from '@grpc/grpc-js';
import { buildkit } from '@buildyard/proto';
import { SessionManager, type ClientSession } from './SessionManager.js';

export interface SessionPeer {
  /** The frontend's side of the session. */
  session: ClientSession;
  /** Bytes the client has put on the session's connection so far (HTTP/2 frames of every call). */
  sentBytes(): number;
  close(): Promise<void>;
}

/**
 * Opens a session exposing `methods` whose calls `serve` answers; `idleTimeoutMs` is the
 * frontend's limits.sessionIdleTimeoutMs.
 */
export async function openSessionPeer(methods: string[], serve: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void, idleTimeoutMs?: number): Promise<SessionPeer> {
  const manager = new SessionManager({ idleTimeoutMs });
  const server = new Server();
  server.addService(buildkit.ControlService, {
    session: (call: ServerDuplexStream<buildkit.BytesMessage, buildkit.BytesMessage>) => { void manager.handle(call, 'tenant-a'); },
  } as Partial<buildkit.ControlServer> as buildkit.ControlServer);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const client = new buildkit.ControlClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const id = randomUUID();
  const metadata = new Metadata();
  metadata.set('x-docker-expose-session-uuid', id);
  metadata.set('x-docker-expose-session-grpc-method', methods.join(','));
  const call: ClientDuplexStream<buildkit.BytesMessage, buildkit.BytesMessage> = client.session(metadata);
  call.on('error', () => {});
  // The session's bytes as a connection, on which this client is the HTTP/2 server.
  let sent = 0;
  const connection = new Duplex({
    read() { call.resume(); },
    write(chunk: Buffer, _enc, done) {
      sent += chunk.length;
      if (call.write(buildkit.BytesMessage.fromPartial({ data: chunk }))) done();
      else call.once('drain', () => done());
    },
    final(done) { call.end(); done(); },
  });
  call.on('data', (m: buildkit.BytesMessage) => { if (!connection.push(m.data)) call.pause(); });
  call.on('end', () => connection.push(null));
  connection.on('error', () => {});
  const h2 = createServer();
  h2.on('stream', (stream, headers) => { stream.on('error', () => {}); serve(stream, headers); });
  h2.on('sessionError', () => {});
  h2.emit('connection', connection);
  const session = await manager.get(id, 'tenant-a', AbortSignal.timeout(10_000));
  return {
    session,
    sentBytes: () => sent,
    close: async () => {
      session.close();
      call.cancel();
      client.close();
      h2.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

/** One gRPC message as the client frames it. */
export function grpcFrame(body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  out.set(body, 5);
  return out;
}

/** Answers a call's headers; the trailers follow `stream.end()` (or never). */
export function respondGrpc(stream: ServerHttp2Stream, status = '0'): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': status }));
}

