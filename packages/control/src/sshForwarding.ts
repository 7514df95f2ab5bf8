import { Duplex } from 'node:stream';
import { status, type ServerDuplexStream } from '@grpc/grpc-js';
import { DEFAULT_SSH_ID, MAX_SSH_CONNS_PER_BUILD, MAX_SSH_UNREAD_BYTES, type SshRelay } from '@buildyard/contracts';
import { SshServerMessage, type SshClientMessage, type SshFrame } from '@buildyard/proto';
import type { Logger } from '@buildyard/telemetry';
import { serviceError } from './authenticate.js';

/** The client's SSH agents as the coordinating frontend reaches them (a BuildKit session, or SshForward.Session). */
export interface SshAgentSource {
  /** The agent ids the client forwards. */
  ids: string[];
  /** Opens one connection to the client's agent `id` (one of `ids`). */
  dial(id: string): Promise<Duplex>;
}

/** How long a build's offer stays in Redis if its frontend dies without withdrawing it. */
const OFFER_TTL_MS = 24 * 3600 * 1000;

/**
 * Forwards the agents of `source` to `buildId`'s RUN steps: publishes the ids for the workers,
 * then opens a connection to the client's agent for each connection a worker relays, until
 * `signal` aborts (the build ended), when every open connection is closed and the offer goes.
 * An id the client did not forward is refused without reaching the client.
 */
export async function forwardSshAgents(relay: SshRelay, buildId: string, source: SshAgentSource, signal: AbortSignal, log?: Logger): Promise<void> {
  const open = new Set<Duplex>();
  // Connections being dialled or relayed: a worker's requests past MAX_SSH_CONNS_PER_BUILD are refused.
  let active = 0;
  const closeAll = () => { for (const conn of open) conn.destroy(); };
  signal.addEventListener('abort', closeAll, { once: true });
  try {
    for await (const request of relay.opens(buildId, signal)) {
      const id = request.id || DEFAULT_SSH_ID;
      if (!source.ids.includes(id)) {
        await relay.refuse(buildId, request.connId, `unset ssh forward key ${id}`);
        continue;
      }
      if (active >= MAX_SSH_CONNS_PER_BUILD) {
        await relay.refuse(buildId, request.connId, `the build holds ${MAX_SSH_CONNS_PER_BUILD} SSH agent connections open already: close one first`);
        continue;
      }
      active++;
      void (async () => {
        let agent: Duplex;
        try {
          agent = await source.dial(id);
        } catch (err) {
          await relay.refuse(buildId, request.connId, `the client's SSH agent ${id}: ${(err as Error).message}`);
          return;
        }
        if (signal.aborted) { agent.destroy(); return; }
        open.add(agent);
        agent.once('close', () => open.delete(agent));
        await relay.relay(agent, buildId, request.connId, 'frontend', signal);
      })().catch((err: Error) => log?.warn({ buildId, err: err.message }, 'relaying an SSH agent connection failed'))
        .finally(() => { active--; });
    }
  } finally {
    signal.removeEventListener('abort', closeAll);
    closeAll();
    await relay.withdraw(buildId).catch((err: Error) => log?.warn({ buildId, err: err.message }, 'withdrawing the SSH agent offer failed'));
  }
}

/**
 * Publishes `source`'s agents for `buildId` before its stages are submitted and forwards them
 * until `until` settles. Throws (before the build starts) when this builder cannot forward.
 */
export async function startSshForwarding(relay: SshRelay, buildId: string, source: SshAgentSource, log?: Logger): Promise<(until: Promise<unknown>) => void> {
  try {
    await relay.offer(buildId, source.ids, OFFER_TTL_MS);
  } catch (err) {
    throw serviceError(status.FAILED_PRECONDITION, (err as Error).message);
  }
  return (until) => {
    const stop = new AbortController();
    const done = () => stop.abort();
    until.then(done, done);
    void forwardSshAgents(relay, buildId, source, stop.signal, log).catch((err: Error) => log?.warn({ buildId, err: err.message }, 'SSH agent forwarding stopped'));
  };
}

type SessionCall = ServerDuplexStream<SshClientMessage, SshServerMessage>;

/** One CLI's SshForward.Session: its agent connections multiplexed over the call. */
class SshSession implements SshAgentSource {
  private nextConn = 1;
  private readonly conns = new Map<number, Duplex>();
  private sending: Promise<void> = Promise.resolve();
  ended = false;

  constructor(readonly ids: string[], private readonly call: SessionCall) {}

  private send(frame: Partial<SshFrame>): Promise<void> {
    // In order, with the call's back-pressure; after the call ends frames are dropped.
    this.sending = this.sending.then(() => new Promise<void>((resolve) => {
      if (this.ended || this.call.cancelled || this.call.destroyed) { resolve(); return; }
      if (this.call.write(SshServerMessage.fromPartial({ frame }))) resolve();
      else this.call.once('drain', () => resolve());
    }));
    return this.sending;
  }

  async dial(id: string): Promise<Duplex> {
    if (this.ended) throw new Error('the client ended its SSH session');
    const conn = this.nextConn++;
    const session = this;
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _enc, done) { session.send({ conn, data: chunk }).then(() => done(), done); },
      final(done) { session.send({ conn, eof: true }).then(() => done(), done); },
      destroy(err, done) {
        // A connection that did not end both ways is torn down on the client too.
        if (session.conns.delete(conn) && (err || !(duplex.readableEnded && duplex.writableFinished))) void session.send({ conn, error: err?.message ?? 'closed' });
        done(err);
      },
    });
    this.conns.set(conn, duplex);
    await this.send({ conn, open: id });
    return duplex;
  }

  receive(frame: SshFrame): void {
    const duplex = this.conns.get(frame.conn);
    if (!duplex) return;
    if (frame.error) { duplex.destroy(new Error(frame.error.slice(0, 500))); return; }
    if (frame.data.length > 0 && !duplex.push(Buffer.from(frame.data)) && duplex.readableLength > MAX_SSH_UNREAD_BYTES) {
      // The session carries every connection in one call: this one cannot be held back alone, so
      // a client that sends on while its step does not read loses the connection, not memory.
      duplex.destroy(new Error(`the client's SSH agent sent more than ${MAX_SSH_UNREAD_BYTES} bytes that the step has not read`));
      return;
    }
    if (frame.eof) duplex.push(null);
  }

  end(): void {
    this.ended = true;
    for (const duplex of this.conns.values()) duplex.destroy();
  }
}

/**
 * The SshForward sessions clients hold open, by tenant and session id: a Solve names its
 * session in its metadata, and only a session of its own tenant is found.
 */
export class SshSessions {
  private readonly sessions = new Map<string, SshSession>();

  /** Serves one SshForward.Session call of `tenant` until the client ends it. */
  async handle(call: SessionCall, tenant: string): Promise<void> {
    let session: SshSession | undefined;
    let key = '';
    const fail = (code: status, message: string) => { call.emit('error', serviceError(code, message)); };
    try {
      for await (const message of call as AsyncIterable<SshClientMessage>) {
        if (!session) {
          const hello = message.hello;
          if (!hello) return fail(status.INVALID_ARGUMENT, 'an SSH session starts with hello: use buildyard build --ssh');
          if (!/^[A-Za-z0-9_-]{8,64}$/.test(hello.sessionId)) return fail(status.INVALID_ARGUMENT, `invalid SSH session id "${hello.sessionId.slice(0, 70)}": use 8 to 64 letters, digits, '-' or '_'`);
          const ids = hello.ids.map((id) => id || DEFAULT_SSH_ID);
          if (ids.length === 0 || ids.some((id) => id.length > 256)) return fail(status.INVALID_ARGUMENT, 'an SSH session forwards one or more agent ids of up to 256 characters');
          key = `${tenant}\0${hello.sessionId}`;
          if (this.sessions.has(key)) return fail(status.ALREADY_EXISTS, `SSH session ${hello.sessionId} is already open: choose another id`);
          session = new SshSession(ids, call);
          this.sessions.set(key, session);
          call.write(SshServerMessage.fromPartial({ ready: true }));
          continue;
        }
        if (message.frame) session.receive(message.frame);
      }
      if (!call.cancelled) call.end();
    } catch {
      // The client went away: its connections end with the session.
    } finally {
      if (session) {
        session.end();
        if (this.sessions.get(key) === session) this.sessions.delete(key);
      }
    }
  }

  /** The open session `id` of `tenant`; NOT_FOUND for none, or another tenant's. */
  get(id: string, tenant: string): SshAgentSource {
    const session = this.sessions.get(`${tenant}\0${id}`);
    if (!session || session.ended) throw serviceError(status.NOT_FOUND, `no SSH session ${id.slice(0, 64)}: open SshForward.Session on the same connection before Solve (buildyard build --ssh does)`);
    return session;
  }
}
