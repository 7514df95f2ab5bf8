import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { getMetrics } from './metrics.js';

/** The Prometheus exposition of `registry`: body plus the content type to send it with. */
export async function renderMetrics(registry: Registry = getMetrics().registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * A `/metrics` request handler for node:http. From fastify, either call renderMetrics in a
 * route or pass `(req, reply) => { reply.hijack(); return handler(req.raw, reply.raw); }`.
 */
export function metricsHandler(registry?: Registry): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (_req, res) => {
    try {
      const { contentType, body } = await renderMetrics(registry);
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`collecting metrics failed: ${(err as Error).message}\n`);
    }
  };
}
