import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { RedisClient as Redis } from './redisClient.js';
import { z } from 'zod';
import { secretsKey } from './BuildSecrets.js';
import { jsonFromRedis } from './fromRedis.js';
import { DEFAULT_KEYS, type RedisKeys } from './keys.js';

/** The id of an ssh mount or `--ssh` entry that names none (BuildKit's sshforward.DefaultID). */
export const DEFAULT_SSH_ID = 'default';

/** A worker's request to reach the client's agent `id` for one connection a RUN made. */
export interface SshOpenRequest { connId: string; id: string }

const offerSchema = z.object({ ids: z.array(z.string()) });
const openSchema = z.object({ connId: z.string().regex(/^[a-f0-9]{32}$/), id: z.string().max(256) });

/**
 * Why a RUN's `--mount=type=ssh,id=<id>` has no agent behind it, in BuildKit's words, or
 * undefined when the client forwards it. `offered` is undefined when the client forwards no
 * agent at all (BuildKit: its session has no SSH service), else the ids it forwards.
 */
export function missingSshAgent(id: string, offered: readonly string[] | undefined): string | undefined {
  if (offered === undefined) return `no SSH key ${JSON.stringify(id)} forwarded from the client`;
  const wanted = id || DEFAULT_SSH_ID;
  return offered.includes(wanted) ? undefined : `unset ssh forward key ${wanted}`;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A relayed connection's lists outlive a peer that died without closing it by at most this. */
const CONN_TTL_MS = 60 * 60 * 1000;
/** How long a closed connection waits for the other side's last frame before it gives up. */
const PEER_GRACE_MS = 30_000;
/**
 * Most bytes one side relays of one connection. The agent protocol moves a few KiB (a list of
 * keys, a signature per login: agents sign a hash, never a payload); a step that writes on
 * without reading the answers would otherwise pile both directions up in Redis, which every
 * tenant's builds share.
 */
export const MAX_SSH_CONN_BYTES = 1024 * 1024;
/**
 * Most connections a step holds open at once to one agent socket (`git submodule update --jobs`
 * opens one per job); the one past it is closed at once. With MAX_SSH_CONN_BYTES this bounds
 * what one socket can put in Redis at 2 x 16 MiB.
 */
export const MAX_SSH_CONNS_PER_SOCKET = 16;
/** Most agent connections a build holds open at once across its steps; the frontend refuses the one past it. */
export const MAX_SSH_CONNS_PER_BUILD = 64;
/** Most bytes of the agent protocol in one relayed frame: what a fast sender writes is gathered into frames this large. */
export const SSH_FRAME_BYTES = 32 * 1024;
/**
 * Each direction of a relayed connection's window: at most this many of its frames wait in Redis
 * for the other side to take them. While they do, the sending side stops reading its socket (the
 * step's, or the agent connection), so a fast writer facing a slow reader is held back where it
 * writes (its socket fills) instead of piling its bytes up in Redis or in the relay's memory. A
 * frame is counted whatever its size, so a writer sending a byte at a time gains nothing.
 */
export const SSH_WINDOW_FRAMES = 8;
/** A frame's cost beyond its payload: the kind byte, the IV and the tag. */
export const SSH_FRAME_OVERHEAD = 1 + IV_BYTES + TAG_BYTES;
/**
 * Most bytes one direction of one connection holds in Redis: the window's frames, full, and the
 * direction's last frame (an end, or an error of up to 500 bytes), which never waits.
 */
export const SSH_WINDOW_BYTES = SSH_WINDOW_FRAMES * (SSH_FRAME_BYTES + SSH_FRAME_OVERHEAD) + 500 + SSH_FRAME_OVERHEAD;
/**
 * Most bytes of one agent connection the frontend holds for the relay from a client session
 * that has no flow control of its own per connection (Buildyard's SshForward.Session carries
 * them all in one call): a client that sends on while the step does not read (the window is
 * full) has the connection torn down past it. An agent answers what it is asked, 256 KiB at
 * most (OpenSSH's AGENT_MAX_LEN), so an agent the step reads from never comes near it.
 */
export const MAX_SSH_UNREAD_BYTES = 256 * 1024;
/** While a window is full, how often its sender looks again (from the first wait up to the longest). */
const WINDOW_POLL_FIRST_MS = 5;
const WINDOW_POLL_MAX_MS = 200;
/** Frame kinds: data, end of this direction, error (the connection is torn down). */
type FrameKind = 'd' | 'e' | 'x';

/**
 * Carries SSH agent connections between the worker that runs a RUN --mount=type=ssh and the
 * frontend that coordinates its build, which alone reaches the client's agent. Workers and
 * frontends meet only in Redis, so each connection is two Redis lists (up: worker to frontend,
 * down: frontend to worker) under the build's keys.
 *
 * Everything is sealed with AES-256-GCM under the shared secrets key (BUILDYARD_SECRETS_KEY),
 * as build secrets are: Redis sees neither the agent protocol's bytes nor can anyone without
 * the key ask the agent for a signature by writing an open request or inject a frame. The
 * associated data binds each frame to its build, connection, direction and position, so a
 * frame replayed, reordered or moved to another build's connection fails to open.
 * Keys never pass: a client's private keys stay in its agent (or in its CLI process).
 */
export class SshRelay {
  private readonly key: Buffer | undefined;

  constructor(private readonly redis: Redis, hexKey: string, private readonly keys: RedisKeys = DEFAULT_KEYS) {
    this.key = secretsKey(hexKey);
  }

  private sealKey(): Buffer {
    if (!this.key) throw new Error('this builder has no secrets key (BUILDYARD_SECRETS_KEY), so it cannot forward an SSH agent to its workers: give the frontend and every worker the same key');
    return this.key;
  }

  private seal(aad: string, plain: Buffer): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealKey(), iv);
    cipher.setAAD(Buffer.from(aad));
    return Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  }

  /** The plain bytes, or undefined for anything not sealed by a holder of the key for `aad`. */
  private open(aad: string, sealed: Buffer): Buffer | undefined {
    if (sealed.length < IV_BYTES + TAG_BYTES) return undefined;
    const decipher = createDecipheriv('aes-256-gcm', this.sealKey(), sealed.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(IV_BYTES, sealed.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return undefined;
    }
  }

  // ---- the frontend's side

  /** Publishes the agent ids the client forwards for `buildId` (before its stages are submitted). */
  async offer(buildId: string, ids: readonly string[], ttlMs: number): Promise<void> {
    this.sealKey();
    await this.redis.set(this.keys.ssh.offer(buildId), JSON.stringify({ ids: [...new Set(ids)] }), 'PX', ttlMs);
  }

  /** Ends the offer: workers see no agent, and pending open requests go. */
  async withdraw(buildId: string): Promise<void> {
    await this.redis.del(this.keys.ssh.offer(buildId), this.keys.ssh.open(buildId));
  }

  /**
   * The open requests of `buildId`'s workers, as they come, until `signal` aborts. A request
   * that is not sealed for this build, or repeats a connection id, is dropped.
   */
  async *opens(buildId: string, signal: AbortSignal): AsyncGenerator<SshOpenRequest> {
    const blocking = this.redis.duplicate();
    blocking.on('error', () => {});
    const stop = () => blocking.disconnect();
    signal.addEventListener('abort', stop, { once: true });
    const seen = new Set<string>();
    try {
      while (!signal.aborted) {
        let popped: [Buffer, Buffer] | null;
        try {
          popped = await blocking.blpopBuffer(this.keys.ssh.open(buildId), 0);
        } catch (err) {
          if (signal.aborted) return;
          throw err;
        }
        if (!popped) continue;
        const plain = this.open(`ssh-open\0${buildId}`, popped[1]);
        if (!plain) continue;
        let request: SshOpenRequest;
        try { request = jsonFromRedis(openSchema, plain.toString('utf8'), `an SSH open request of build ${buildId}`); } catch { continue; }
        if (seen.has(request.connId)) continue;
        seen.add(request.connId);
        yield request;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      blocking.disconnect();
    }
  }

  /** Refuses one connection: the worker's end is torn down with `message`. */
  async refuse(buildId: string, connId: string, message: string): Promise<void> {
    await this.push(buildId, connId, 'down', 0, 'x', Buffer.from(message.slice(0, 500)));
    await this.redis.del(this.keys.ssh.conn(buildId, connId, 'up'));
  }

  // ---- the worker's side

  /** The ids the client forwards for `buildId`; undefined when it forwards no agent. */
  async offered(buildId: string): Promise<string[] | undefined> {
    const raw = await this.redis.get(this.keys.ssh.offer(buildId));
    return raw === null ? undefined : jsonFromRedis(offerSchema, raw, `the SSH offer of build ${buildId}`).ids;
  }

  /** Asks the coordinating frontend for a connection to agent `id`; returns the connection's id. */
  async requestOpen(buildId: string, id: string): Promise<string> {
    const connId = randomBytes(16).toString('hex');
    const key = this.keys.ssh.open(buildId);
    await this.redis.multi()
      .rpush(key, this.seal(`ssh-open\0${buildId}`, Buffer.from(JSON.stringify({ connId, id } satisfies SshOpenRequest))))
      .pexpire(key, CONN_TTL_MS)
      .exec();
    return connId;
  }

  // ---- both sides

  private frameAad(buildId: string, connId: string, direction: 'up' | 'down', seq: number): string {
    return `ssh-frame\0${buildId}\0${connId}\0${direction}\0${seq}`;
  }

  /** Appends one frame to the direction's list; answers how many frames it then holds. */
  private async push(buildId: string, connId: string, direction: 'up' | 'down', seq: number, kind: FrameKind, payload: Buffer): Promise<number> {
    const key = this.keys.ssh.conn(buildId, connId, direction);
    const frame = this.seal(this.frameAad(buildId, connId, direction, seq), Buffer.concat([Buffer.from(kind), payload]));
    const replies = await this.redis.multi().rpush(key, frame).pexpire(key, CONN_TTL_MS).exec();
    const [err, length] = replies?.[0] ?? [new Error('the SSH relay\'s push was discarded')];
    if (err) throw err;
    return Number(length);
  }

  /**
   * Waits until the direction's list holds fewer frames than the window (the other side took
   * some), or `stop` says the wait is over.
   */
  private async windowOpen(key: string, stop: { readonly stopped: boolean; readonly wake: Promise<void> }): Promise<void> {
    for (let wait = WINDOW_POLL_FIRST_MS; ; wait = Math.min(2 * wait, WINDOW_POLL_MAX_MS)) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([stop.wake, new Promise<void>((resolve) => { timer = setTimeout(resolve, wait); })]);
      clearTimeout(timer);
      if (stop.stopped || (await this.redis.llen(key)) < SSH_WINDOW_FRAMES) return;
    }
  }

  /**
   * Relays `socket` (the RUN's connection on the worker, the agent's on the frontend) over the
   * connection's lists until it closes; closes it when the other side ends or fails. Resolves
   * when both directions are done and this side's inbound list is gone. Aborting `signal` (the
   * step or the build ended) closes the socket and stops waiting for the other side.
   */
  async relay(socket: Duplex, buildId: string, connId: string, side: 'worker' | 'frontend', signal?: AbortSignal): Promise<void> {
    const out = side === 'worker' ? 'up' : 'down';
    const inbound = side === 'worker' ? 'down' : 'up';
    const outKey = this.keys.ssh.conn(buildId, connId, out);
    // What was read from the socket and not pushed yet. The socket is paused while a whole frame
    // of it waits (the other side's window is full), so it holds about a frame at most.
    const pending: Buffer[] = [];
    let pendingBytes = 0;
    // This direction's last frame: 'e' follows every byte read, 'x' (a teardown) drops what waits.
    let terminal: { kind: 'e' | 'x'; payload: Buffer } | undefined;
    let wakeSender: () => void = () => {};
    // Ends a wait for the window: a teardown, or the relay giving up on the other side.
    let interrupted = false;
    let interrupt: () => void = () => {};
    const interruption = new Promise<void>((resolve) => { interrupt = () => { interrupted = true; resolve(); }; });
    const terminate = (kind: 'e' | 'x', payload: Buffer = Buffer.alloc(0)) => {
      if (terminal) return;
      terminal = { kind, payload };
      if (kind === 'x') { pending.length = 0; pendingBytes = 0; interrupt(); }
      wakeSender();
    };
    let relayed = 0;
    socket.on('data', (chunk: Buffer) => {
      if (terminal) return;
      relayed += chunk.length;
      if (relayed > MAX_SSH_CONN_BYTES) {
        terminate('x', Buffer.from(`the SSH agent connection relayed more than ${MAX_SSH_CONN_BYTES} bytes`));
        socket.destroy();
        return;
      }
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= SSH_FRAME_BYTES) socket.pause();
      wakeSender();
    });
    /** Up to a frame of what waits, in order. */
    const takeFrame = (): Buffer => {
      const parts: Buffer[] = [];
      let size = 0;
      while (pending.length > 0 && size < SSH_FRAME_BYTES) {
        const head = pending[0]!;
        const part = head.length <= SSH_FRAME_BYTES - size ? pending.shift()! : head.subarray(0, SSH_FRAME_BYTES - size);
        if (part !== head) pending[0] = head.subarray(part.length);
        parts.push(part);
        size += part.length;
      }
      pendingBytes -= size;
      if (pendingBytes < SSH_FRAME_BYTES && socket.isPaused() && !terminal) socket.resume();
      return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    };
    // One sender keeps the frames in order and in the window; a failed push tears the connection down.
    const sent = (async () => {
      const stop = { get stopped() { return interrupted; }, wake: interruption };
      for (let seq = 0; ;) {
        if (pendingBytes === 0 && !terminal) {
          await new Promise<void>((resolve) => { wakeSender = resolve; });
          continue;
        }
        // Given up (the step or build ended, or the other side stopped taking frames): what
        // still waits is dropped, and the other side learns of it.
        if (interrupted && terminal?.kind !== 'x' && (pendingBytes > 0 || !terminal)) {
          terminal = { kind: 'x', payload: Buffer.from('the connection ended with bytes it had not relayed') };
          pending.length = 0;
          pendingBytes = 0;
        }
        try {
          // The last frame never waits for the window: it is small, and the other side may be gone.
          if (pendingBytes === 0 || terminal?.kind === 'x') { await this.push(buildId, connId, out, seq, terminal!.kind, terminal!.payload); return; }
          if ((await this.push(buildId, connId, out, seq++, 'd', takeFrame())) >= SSH_WINDOW_FRAMES) await this.windowOpen(outKey, stop);
        } catch {
          socket.destroy();
          return;
        }
      }
    })();
    socket.on('end', () => terminate('e'));
    socket.on('error', (err: Error) => terminate('x', Buffer.from(err.message.slice(0, 500))));
    // A socket that closed before the relay began (a step's client that gave up at once) ends it too.
    const closed = new Promise<void>((resolve) => {
      const done = () => { terminate('x', Buffer.from('the connection closed')); resolve(); };
      if (socket.destroyed) done();
      else socket.once('close', done);
    });

    const blocking = this.redis.duplicate();
    // Its failures reject the pending BLPOP, which ends the relay.
    blocking.on('error', () => {});
    const stop = () => { socket.destroy(); blocking.disconnect(); interrupt(); };
    if (signal?.aborted) stop();
    signal?.addEventListener('abort', stop, { once: true });
    // The peer's last frame always follows this side's; waiting for it means no frame can
    // re-create the inbound list after it is removed. A peer that died is waited for a while.
    let grace: NodeJS.Timeout | undefined;
    void closed.then(() => { grace = setTimeout(() => { blocking.disconnect(); interrupt(); }, PEER_GRACE_MS); grace.unref(); });
    const receiving = (async () => {
      for (let seq = 0; ; seq++) {
        let popped: [Buffer, Buffer] | null;
        try {
          popped = await blocking.blpopBuffer(this.keys.ssh.conn(buildId, connId, inbound), 0);
        } catch {
          return; // disconnected: this side closed
        }
        if (!popped) { seq--; continue; }
        const plain = this.open(this.frameAad(buildId, connId, inbound, seq), popped[1]);
        if (!plain || plain.length === 0) { socket.destroy(); return; }
        const kind = String.fromCharCode(plain[0]) as FrameKind;
        if (kind === 'd') {
          if (socket.destroyed || !socket.writable) continue;
          if (!socket.write(plain.subarray(1))) await new Promise<void>((resolve) => { socket.once('drain', resolve); socket.once('close', resolve); });
        } else if (kind === 'e') {
          socket.end();
          return;
        } else {
          socket.destroy();
          return;
        }
      }
    })();
    await receiving;
    await closed;
    await sent;
    clearTimeout(grace);
    signal?.removeEventListener('abort', stop);
    blocking.disconnect();
    await this.redis.del(this.keys.ssh.conn(buildId, connId, inbound)).catch(() => {});
  }
}
