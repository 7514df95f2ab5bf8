// The CLI's SshForward.Session: the frontend coordinating the build opens agent connections
// over it, one per connection a RUN --mount=type=ssh step makes (see proto/buildyard/v1/ssh_forward.proto).
import { randomUUID } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { credentials, type ClientDuplexStream, type Metadata } from '@grpc/grpc-js';
import { SshClientMessage, SshForwardClient, type SshFrame, type SshServerMessage } from '@buildyard/proto';
import type { BuilderConnection } from './connectBuilder.js';
import type { LocalSshAgents } from './sshAgents.js';

/** The metadata a Solve names its SSH session with. */
export const SSH_SESSION_HEADER = 'buildyard-ssh-session';

export interface SshSessionHandle {
  /** The Solve call's metadata: the connection's, naming this session. */
  metadata: Metadata;
  close(): void;
}

/**
 * Opens the session on the builder connection's own channel (Solve must reach the same
 * frontend) and resolves once the frontend has registered it.
 */
export async function openSshSession(conn: BuilderConnection, agents: LocalSshAgents): Promise<SshSessionHandle> {
  // channelOverride: the control client's channel, so both calls go to one frontend.
  const client = new SshForwardClient(conn.builder.address, credentials.createInsecure(), { channelOverride: conn.control.getChannel() });
  const call: ClientDuplexStream<SshClientMessage, SshServerMessage> = client.session(conn.metadata);
  const sessionId = randomUUID();
  const conns = new Map<number, Duplex>();
  const send = (frame: Partial<SshFrame>) => { if (!call.writableEnded && !call.destroyed) call.write(SshClientMessage.fromPartial({ frame })); };

  const open = (num: number, id: string) => {
    let agent: Duplex;
    try {
      agent = agents.dial(id);
    } catch (err) {
      send({ conn: num, error: (err as Error).message });
      return;
    }
    conns.set(num, agent);
    agent.on('data', (data: Buffer) => send({ conn: num, data }));
    agent.on('error', (err: Error) => { if (conns.delete(num)) send({ conn: num, error: err.message }); });
    agent.on('close', () => conns.delete(num));
  };
  const receive = (frame: SshFrame) => {
    if (frame.open) { open(frame.conn, frame.open); return; }
    const agent = conns.get(frame.conn);
    if (!agent) return;
    if (frame.data.length > 0) agent.write(Buffer.from(frame.data));
    if (frame.eof || frame.error) {
      // Agent requests are answered before the step closes its end: this connection is done.
      conns.delete(frame.conn);
      if (frame.eof) send({ conn: frame.conn, eof: true });
      agent.destroy();
    }
  };

  await new Promise<void>((resolve, reject) => {
    call.on('data', (message: SshServerMessage) => {
      if (message.ready) resolve();
      else if (message.frame) receive(message.frame);
    });
    call.once('error', reject);
    call.write(SshClientMessage.fromPartial({ hello: { sessionId, ids: agents.ids } }));
  });
  // Later failures end the session's connections; the build reports what its steps saw.
  call.on('error', () => { for (const agent of conns.values()) agent.destroy(); });
  const metadata = conn.metadata.clone();
  metadata.set(SSH_SESSION_HEADER, sessionId);
  return {
    metadata,
    close() {
      for (const agent of conns.values()) agent.destroy();
      conns.clear();
      call.end();
      call.cancel();
    },
  };
}
