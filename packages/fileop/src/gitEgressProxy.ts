// The git binary resolves and connects by itself, so a git fetch for a build cannot be held to
// the build's network policy by checking a URL beforehand (a redirect, or a DNS answer that
// changes between check and connect, would slip past). Instead every connection git opens goes
// through this loopback proxy, one per fetch: CONNECT tunnels (https, and git:// through
// core.gitProxy) and absolute-URI requests (plain http). The proxy resolves each name once and
// connects only to an address the policy allows (vettedLookup, as ADD <url> downloads do), and
// counts the bytes the remote sends so one fetch cannot fill the disk.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AddressRefusedError, refusedLiteral, vettedLookup } from '@buildyard/oci';

export interface GitEgressProxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** The first refusal or limit hit, which explains git's own vaguer error. */
  failure(): Error | undefined;
  close(): Promise<void>;
}

export interface GitEgressProxyOptions {
  refuse?: (address: string) => string | undefined;
  /** Most bytes the remote may send over all connections. */
  maxBytes: number;
  connectTimeoutMs: number;
  /** Longest silence from the remote on a connection (a server that accepts and never answers). */
  idleTimeoutMs: number;
}

/** A limit of the fetch was hit (size); its message is for the user. */
export class GitFetchLimitError extends Error {}

export async function startGitEgressProxy(opts: GitEgressProxyOptions): Promise<GitEgressProxy> {
  let failure: Error | undefined;
  let received = 0;
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => { sockets.add(s); s.once('close', () => sockets.delete(s)); };
  const note = (err: Error) => { failure ??= err; };
  const count = (chunk: Buffer, abort: () => void) => {
    received += chunk.length;
    if (received > opts.maxBytes) {
      note(new GitFetchLimitError(`the repository sent more than ${opts.maxBytes} bytes; fetch a smaller repository or subdirectory`));
      abort();
    }
  };

  /** Opens a TCP connection to host:port under the policy. */
  const open = (host: string, port: number): Promise<Socket> => new Promise((resolve, reject) => {
    const refused = opts.refuse && refusedLiteral(host, opts.refuse);
    if (refused) { reject(refused); return; }
    const literal = host.replace(/^\[|\]$/g, '');
    const socket = connect({ host: literal, port, ...(opts.refuse ? { lookup: vettedLookup(opts.refuse) } : {}) });
    const timer = setTimeout(() => socket.destroy(new Error(`could not connect to ${host}:${port} within ${opts.connectTimeoutMs} ms`)), opts.connectTimeoutMs);
    socket.once('connect', () => { clearTimeout(timer); socket.off('error', reject); resolve(socket); });
    socket.once('error', (err) => { clearTimeout(timer); reject(err); });
  });

  /** Ends both sides of a tunnel or request when the remote stays silent too long. */
  const idle = (remote: Socket, host: string, close: () => void) => {
    remote.setTimeout(opts.idleTimeoutMs, () => {
      note(new GitFetchLimitError(`${host} sent nothing for ${opts.idleTimeoutMs} ms; check that the git server answers`));
      close();
    });
  };

  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    // Plain http: git asks for an absolute URI; only http:// is forwarded this way.
    let target: URL;
    try { target = new URL(req.url ?? ''); } catch { res.writeHead(400).end(); return; }
    if (target.protocol !== 'http:') { res.writeHead(400).end(); return; }
    // node:net never looks an address up, so a literal one is vetted here.
    const refused = opts.refuse && refusedLiteral(target.hostname, opts.refuse);
    if (refused) { note(refused); res.writeHead(403).end(); return; }
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    delete headers['proxy-authorization'];
    const upstream = http.request(target, {
      method: req.method, headers, agent: false,
      ...(opts.refuse ? { lookup: vettedLookup(opts.refuse) } : {}),
    });
    upstream.once('socket', (s) => { track(s); idle(s, target.host, () => { s.destroy(); upstream.destroy(); res.destroy(); }); });
    upstream.once('response', (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.on('data', (chunk: Buffer) => count(chunk, () => { up.destroy(); res.destroy(); }));
      up.pipe(res);
    });
    upstream.once('error', (err) => {
      note(err);
      if (!res.headersSent) res.writeHead(err instanceof AddressRefusedError ? 403 : 502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  });
  server.on('connect', (req: IncomingMessage, client: Duplex, head: Buffer) => {
    track(client);
    client.on('error', () => client.destroy());
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(req.url ?? '');
    if (!m) { client.end('HTTP/1.1 400 Bad Request\r\n\r\n'); return; }
    open(m[1]!, Number(m[2])).then((remote) => {
      track(remote);
      idle(remote, req.url ?? '', () => { remote.destroy(); client.destroy(); });
      remote.on('error', () => client.destroy());
      remote.on('close', () => client.destroy());
      client.on('close', () => remote.destroy());
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) remote.write(head);
      remote.on('data', (chunk: Buffer) => count(chunk, () => { remote.destroy(); client.destroy(); }));
      remote.pipe(client);
      client.pipe(remote);
    }, (err: Error) => {
      note(err);
      client.end(`HTTP/1.1 ${err instanceof AddressRefusedError ? '403 Forbidden' : '502 Bad Gateway'}\r\n\r\n`);
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    failure: () => failure,
    close: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
