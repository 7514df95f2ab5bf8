import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { metricsHandler } from './metricsHandler.js';

export interface HealthServerOptions {
  /** HOST:PORT (port 0 picks one); the setting's name goes into the error for a bad value. */
  listen: string;
  setting: string;
  /**
   * When set, `GET /metrics` needs `Authorization: Bearer <token>`: the metrics carry tenant
   * names and activity, and a health port is often reachable from tenants' pods. `/healthz` and
   * `/readyz` stay open for probes; they say nothing about tenants.
   */
  metricsToken?: string;
  /** `/readyz`: answers 200 when it resolves true, else 503 with `notReadyMessage`. */
  ready?: () => Promise<boolean>;
  notReadyMessage?: string;
  registry?: Registry;
  onMetricsError?: (err: Error) => void;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of a request's bearer token against `expected`. */
function bearerMatches(header: string | undefined, expected: string): boolean {
  const given = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
  return given !== undefined && timingSafeEqual(digest(given), digest(expected));
}

/** A process's /healthz, /readyz and Prometheus /metrics endpoint, listening once it resolves. */
export async function startHealthServer(opts: HealthServerOptions): Promise<{ server: Server; url: string }> {
  const port = Number(opts.listen.split(':').pop());
  if (!/:\d+$/.test(opts.listen) || !Number.isInteger(port) || port > 65535) {
    throw new Error(`${opts.setting} "${opts.listen.slice(0, 100)}" is not HOST:PORT: set it to e.g. 127.0.0.1:9374`);
  }
  const host = opts.listen.replace(/:\d+$/, '') || '127.0.0.1';
  const serveMetrics = metricsHandler(opts.registry);
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz') { res.writeHead(200).end('ok\n'); return; }
    if (path === '/readyz' && opts.ready) {
      opts.ready().catch(() => false).then((ok) => { res.writeHead(ok ? 200 : 503).end(ok ? 'ready\n' : `${opts.notReadyMessage ?? 'not ready'}\n`); });
      return;
    }
    if (path === '/metrics') {
      if (opts.metricsToken && !bearerMatches(req.headers.authorization, opts.metricsToken)) {
        res.writeHead(401, { 'www-authenticate': 'Bearer' }).end('/metrics needs the metrics token: send Authorization: Bearer <token>\n');
        return;
      }
      serveMetrics(req, res).catch((err: Error) => { opts.onMetricsError?.(err); res.destroy(); });
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolveListen(); });
  });
  const address = server.address() as AddressInfo;
  return { server, url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}` };
}
