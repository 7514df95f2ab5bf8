import { connect, type ClientHttp2Session } from 'node:http2';
import { Duplex } from 'node:stream';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { SESSION_IDLE_TIMEOUT_MS } from '@buildyard/context';
import { buildkit } from '@buildyard/proto';
import { BidiCall, type Codec } from './grpcOverHttp2.js';

type BytesMessage = buildkit.BytesMessage;

/**
 * Turns a Control.Session call into a byte stream, as BuildKit's grpchijack does: every
 * BytesMessage carries the next bytes of an HTTP/2 connection the client opened to us.
 */
function sessionConnection(call: ServerDuplexStream<BytesMessage, BytesMessage>): Duplex {
  const duplex = new Duplex({
    read() { call.resume(); },
    write(chunk: Buffer, _enc, done) {
      if (call.cancelled || call.destroyed) { done(new Error('the session call has ended')); return; }
      if (call.write(buildkit.BytesMessage.fromPartial({ data: chunk }))) done();
      else call.once('drain', () => done());
    },
    final(done) { call.end(); done(); },
  });
  call.on('data', (m: BytesMessage) => { if (!duplex.push(m.data)) call.pause(); });
  call.on('end', () => duplex.push(null));
  call.on('error', (err: Error) => duplex.destroy(err));
  call.on('cancelled', () => duplex.destroy());
  return duplex;
}

/** One client's session: the services it exposes, called over its hijacked connection. */
export class ClientSession {
  private readonly h2: ClientHttp2Session;
  readonly closed: Promise<void>;

  /**
   * `idleTimeoutMs` (limits.sessionIdleTimeoutMs): the longest the client may go silent in a
   * transfer the frontend waits on (calls made with `idle`).
   */
  constructor(readonly id: string, readonly tenant: string, readonly sharedKey: string, readonly methods: ReadonlySet<string>, call: ServerDuplexStream<BytesMessage, BytesMessage>,
    readonly idleTimeoutMs = SESSION_IDLE_TIMEOUT_MS) {
    const connection = sessionConnection(call);
    this.h2 = connect('http://localhost', { createConnection: () => connection });
    this.closed = new Promise((resolve) => {
      const done = () => resolve();
      this.h2.once('close', done);
      connection.once('close', done);
      call.once('cancelled', done);
      call.once('finish', done);
    });
    // The client going away ends the session; its errors end the calls on it, which report them.
    this.h2.on('error', () => {});
    connection.on('error', () => {});
  }

  supports(method: string): boolean {
    return this.methods.has(method.toLowerCase());
  }

  /**
   * Calls `method` of the client. `idle` says what the client does in the call (`sending the
   * build context "context"`): the call then fails and is cancelled when the client goes silent
   * for idleTimeoutMs while the frontend waits on it. Without it the call may idle for ever (an
   * SSH agent connection idles as long as its step likes).
   */
  call<Req, Res>(method: string, metadata: Record<string, string | string[]>, codec: Codec<Req, Res>, idle?: string): BidiCall<Req, Res> {
    return new BidiCall(this.h2, method, metadata, codec, idle === undefined ? undefined : { ms: this.idleTimeoutMs, what: idle });
  }

  close(): void {
    this.h2.destroy();
  }
}

const header = (call: ServerDuplexStream<BytesMessage, BytesMessage>, name: string): string[] =>
  call.metadata.get(name).map((v) => String(v));

const sessionKey = (tenant: string, id: string) => `${tenant}\0${id}`;

/**
 * The sessions clients hold open, by tenant and id (another tenant's session of the same id is
 * another session: it can neither be reached nor replaced). A Solve names its session; it may
 * arrive before the session call does (buildctl opens both at once), so `get` waits for it, as
 * buildkitd does.
 */
export class SessionManager {
  private readonly sessions = new Map<string, ClientSession>();
  private readonly waiters = new Map<string, Set<() => void>>();

  /** `idleTimeoutMs`: limits.sessionIdleTimeoutMs, for each session's transfers. */
  constructor(private readonly opts: { idleTimeoutMs?: number } = {}) {}

  /** Serves one Control.Session call for `tenant` until the client ends it. */
  async handle(call: ServerDuplexStream<BytesMessage, BytesMessage>, tenant: string): Promise<void> {
    const id = header(call, 'x-docker-expose-session-uuid')[0];
    if (!id) {
      call.emit('error', { code: 3, details: 'session without an X-Docker-Expose-Session-Uuid header: use buildctl or docker buildx' });
      return;
    }
    const methods = new Set(header(call, 'x-docker-expose-session-grpc-method').flatMap((v) => v.split(',')).map((m) => m.trim().toLowerCase()));
    const session = new ClientSession(id, tenant, header(call, 'x-docker-expose-session-sharedkey')[0] ?? '', methods, call, this.opts.idleTimeoutMs);
    const key = sessionKey(tenant, id);
    this.sessions.set(key, session);
    for (const wake of this.waiters.get(key) ?? []) wake();
    this.waiters.delete(key);
    await session.closed;
    session.close();
    if (this.sessions.get(key) === session) this.sessions.delete(key);
  }

  /** The session `id` of `tenant`, waiting until it is opened; rejects when `signal` aborts. */
  async get(id: string, tenant: string, signal: AbortSignal): Promise<ClientSession> {
    // BuildKit prefixes session ids used in cache keys ("<prefix>:<id>"); lookups ignore it.
    const bare = id.includes(':') ? id.slice(id.indexOf(':') + 1) : id;
    const key = sessionKey(tenant, bare);
    for (;;) {
      const found = this.sessions.get(key);
      if (found) return found;
      if (signal.aborted) throw new Error(`no active session ${bare.slice(0, 64)}: the client must open Control.Session before Solve`);
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(key) ?? new Set();
        const wake = () => { set.delete(wake); signal.removeEventListener('abort', wake); resolve(); };
        set.add(wake);
        this.waiters.set(key, set);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  closeAll(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}
