// One trace covers the client, the frontend and the workers: spans exported over OTLP by the
// real processes reach a local collector under the client's trace id.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, until, type Cluster } from '@buildyard/testkit';
import { solve } from './grpcClient.js';

interface ExportedSpan { traceId: string; name: string; service: string }

test('solve, plan, stage and vertex spans from frontend and workers share the client\'s trace', async () => {
  const spans: ExportedSpan[] = [];
  const collector = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const payload = JSON.parse(body) as { resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans: Array<{ spans: Array<{ traceId: string; name: string }> }> }> };
      for (const rs of payload.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const span of ss.spans) spans.push({ traceId: span.traceId, name: span.name, service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  after(() => collector.close());
  const port = (collector.address() as { port: number }).port;
  const cluster: Cluster = await startCluster({ workers: 1, env: {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_BSP_SCHEDULE_DELAY: '200',
  } });
  after(() => cluster.stop());

  const traceId = randomBytes(16).toString('hex');
  const context = mkdtempSync(join(tmpdir(), 'buildyard-trace-'));
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo traced-${traceId} > /t\n`);
  const outcome = await solve(cluster, context, { platforms: ['linux/amd64'] }, { metadata: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });
  assert.equal(outcome.error, undefined, outcome.error?.message);

  const names = () => new Set(spans.filter((s) => s.traceId === traceId).map((s) => `${s.service}:${s.name}`));
  // Spans leave in batches; wait for each kind to arrive (the deadline only bounds a hang).
  await until('every kind of span at the collector', () => ['buildyardd:solve', 'buildyardd:plan', 'buildyard-worker:stage', 'buildyard-worker:vertex'].every((n) => names().has(n)), 60_000, 100)
    .catch(() => undefined); // the assertion below names what is missing
  assert.deepEqual([...names()].sort(), ['buildyard-worker:stage', 'buildyard-worker:vertex', 'buildyardd:plan', 'buildyardd:solve']);
});
