// A loopback relay to a test's Redis, for outages a test controls: cut (connections closed, the
// port refused) and put back on the same port, or frozen (connections kept, nothing passed on).
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';

/** A loopback relay to the test's Redis that can be cut and put back on the same port, or frozen (connections kept, nothing passed on). */
export async function relay(to: URL) {
  const sockets = new Set<Socket>();
  const pairs: Array<[Socket, Socket]> = [];
  const server = createServer((client) => {
    const upstream = createConnection(Number(to.port), to.hostname);
    for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => undefined); }
    client.pipe(upstream).pipe(client);
    pairs.push([client, upstream]);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: async () => { const closed = once(server, 'close'); server.close(); for (const s of sockets) s.destroy(); await closed; },
    restore: async () => { server.listen(port, '127.0.0.1'); await once(server, 'listening'); },
    stop: () => { server.close(); for (const s of sockets) s.destroy(); },
    freeze: () => { for (const [client, upstream] of pairs) { client.unpipe(upstream); client.pause(); } },
    /** Passes on again what froze (what was sent meanwhile goes first). */
    thaw: () => { for (const [client, upstream] of pairs) { client.pipe(upstream); client.resume(); } },
  };
}

