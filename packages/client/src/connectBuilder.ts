import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ContextSyncClient, ControlClient } from '@buildyard/proto';
import { ClientError, ExitCode } from './ClientError.js';
import type { ResolvedBuilder } from './BuilderStore.js';
import { channelKey, openChannel } from './builderChannel.js';
import { takePreconnected } from './preconnect.js';

export interface BuilderConnection {
  builder: ResolvedBuilder;
  control: ControlClient;
  contextSync: ContextSyncClient;
  /** Carries `authorization: Bearer <token>` when the builder has a token. */
  metadata: Metadata;
  /** Turns a gRPC failure into a one-line ClientError naming this builder. */
  describeError(err: unknown, doing: string): ClientError;
  /** A unary call with a deadline and error mapping: `conn.unary('list workers', (md, o, cb) => conn.control.listWorkers({}, md, o, cb))`. */
  unary<T>(doing: string, call: (md: Metadata, options: { deadline: Date }, cb: (err: ServiceError | null, res: T) => void) => void, timeoutMs?: number): Promise<T>;
  close(): void;
}

const UNREACHABLE = new Set<number>([status.UNAVAILABLE, status.DEADLINE_EXCEEDED, status.UNAUTHENTICATED, status.PERMISSION_DENIED]);

export function isServiceError(err: unknown): err is ServiceError {
  return typeof err === 'object' && err !== null && typeof (err as ServiceError).code === 'number' && 'details' in err;
}

/** Opens (lazily) the Control and ContextSync clients of a builder. */
export function connectBuilder(builder: ResolvedBuilder): BuilderConnection {
  // Both services share one channel (one connection), the one preconnect() opened if it leads here.
  const { channel, credentials } = takePreconnected(channelKey(builder)) ?? openChannel(builder);
  const control = new ControlClient(builder.address, credentials, { channelOverride: channel });
  const contextSync = new ContextSyncClient(builder.address, credentials, { channelOverride: channel });
  const metadata = new Metadata();
  if (builder.token) metadata.set('authorization', `Bearer ${builder.token}`);
  const where = `builder "${builder.name}" at ${builder.endpoint}`;
  const describeError = (err: unknown, doing: string): ClientError => {
    if (err instanceof ClientError) return err;
    if (isServiceError(err)) {
      const detail = (err.details || err.message).replace(/\s+/g, ' ').replace(/\.?\s*Resolution note:.*$/, '').replace(/Last error: Error: /, 'last error: ').trim();
      if (err.code === status.UNAUTHENTICATED || err.code === status.PERMISSION_DENIED) {
        // The server's reason may carry its own hint; the client knows better whether it sent a
        // token, so it keeps the reason only and gives the one hint that fits.
        const reason = detail.replace(/\s*[:;]\s*(set|check) .*$/i, '');
        const fix = builder.token
          ? 'check the token (BUILDYARD_TOKEN or the file given to builder create --token-file)'
          : 'set BUILDYARD_TOKEN or recreate the builder with --token-file';
        return new ClientError(`${doing}: ${where} refused the credentials: ${reason}; ${fix}`, ExitCode.Unreachable);
      }
      if (UNREACHABLE.has(err.code)) {
        return new ClientError(`${doing}: cannot reach ${where}: ${detail}; check that it runs and the endpoint is right (buildyard builder ls)`, ExitCode.Unreachable);
      }
      if (err.code === status.CANCELLED) return new ClientError(`${doing}: cancelled`, ExitCode.Interrupted);
      if (err.code === status.INVALID_ARGUMENT) return new ClientError(`${doing}: ${detail}`, ExitCode.Usage);
      return new ClientError(`${doing}: ${where}: ${detail}`, ExitCode.BuildFailed);
    }
    return new ClientError(`${doing}: ${(err as Error)?.message ?? String(err)}`, ExitCode.BuildFailed);
  };
  return {
    builder,
    control,
    contextSync,
    metadata,
    describeError,
    unary<T>(doing: string, call: (md: Metadata, o: { deadline: Date }, cb: (err: ServiceError | null, res: T) => void) => void, timeoutMs = 15_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        call(metadata, { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => (err ? reject(describeError(err, doing)) : resolve(res)));
      });
    },
    close() {
      channel.close();
    },
  };
}

/** Runs `fn` on a fresh connection to the builder and closes the connection after, however `fn` ends. */
export async function withBuilderConnection<T>(builder: ResolvedBuilder, fn: (conn: BuilderConnection) => Promise<T>): Promise<T> {
  const conn = connectBuilder(builder);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}
