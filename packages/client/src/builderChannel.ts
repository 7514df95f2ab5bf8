// The gRPC channel to a builder, apart from the service stubs: `buildyard build` opens it before
// the proto stubs and the rest of the build code have loaded (see preconnect.ts), so its TCP, TLS
// and HTTP/2 handshakes overlap that loading.
import { readFileSync } from 'node:fs';
import { Channel, credentials as grpcCredentials, type ChannelCredentials } from '@grpc/grpc-js';
import { usageError } from './ClientError.js';
import type { ResolvedBuilder } from './BuilderStore.js';

const CHANNEL_OPTIONS = { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.keepalive_time_ms': 30_000 };

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw usageError(`cannot read TLS ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix the builder's --tls-${what} path`);
  }
}

function channelCredentials(b: ResolvedBuilder): ChannelCredentials {
  if (!b.tls) return grpcCredentials.createInsecure();
  const f = b.tlsFiles ?? {};
  return grpcCredentials.createSsl(
    f.ca ? readPem(f.ca, 'ca') : null,
    f.key ? readPem(f.key, 'key') : null,
    f.cert ? readPem(f.cert, 'cert') : null,
  );
}

/** What a channel depends on: two builders with the same key can share one (the token travels per call). */
export function channelKey(b: ResolvedBuilder): string {
  return JSON.stringify([b.address, b.tls, b.tlsFiles?.ca ?? '', b.tlsFiles?.cert ?? '', b.tlsFiles?.key ?? '']);
}

export interface BuilderChannel {
  channel: Channel;
  /** The channel's own, for the stubs' constructors (which then use `channel` as it is). */
  credentials: ChannelCredentials;
}

/** A channel to the builder; nothing is dialled until a call, or `connect`, asks for it. */
export function openChannel(b: ResolvedBuilder, connect = false): BuilderChannel {
  const credentials = channelCredentials(b);
  const channel = new Channel(b.address, credentials, CHANNEL_OPTIONS);
  // Leaves IDLE: resolves the address and starts the handshakes without waiting for a call.
  if (connect) channel.getConnectivityState(true);
  return { channel, credentials };
}
