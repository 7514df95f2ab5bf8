// A node:http front for a real registry that flips one byte of blob GET bodies while `corrupt`
// is set, so tests can see a registry serve wrong bytes. Everything else passes through.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface CorruptingProxy {
  host: string;
  corrupt: boolean;
  /** GET blob requests seen (method + path). */
  blobGets: number;
  stop(): Promise<void>;
}

export async function startCorruptingProxy(upstream: string): Promise<CorruptingProxy> {
  const proxy: CorruptingProxy = { host: '', corrupt: false, blobGets: 0, stop: async () => {} };
  const server = http.createServer((req, res) => {
    const isBlobGet = req.method === 'GET' && /^\/v2\/.+\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlobGet) proxy.blobGets++;
    const [host, port] = upstream.split(':');
    const up = http.request({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers);
      if (!(isBlobGet && proxy.corrupt)) { upRes.pipe(res); return; }
      let first = true;
      upRes.on('data', (c: Buffer) => {
        if (first) { c = Buffer.from(c); c[0] ^= 0xff; first = false; }
        res.write(c);
      });
      upRes.on('end', () => res.end());
    });
    up.on('error', (err) => { res.writeHead(502).end(String(err)); });
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return proxy;
}
