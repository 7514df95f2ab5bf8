import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { createLogger, createMetrics, injectTraceContext, metricsHandler, renderMetrics, requestedExporters, startHealthServer, startTelemetry, withExtractedContext } from './index.js';

test('metrics render with their names, labels and observed values', async () => {
  const m = createMetrics();
  m.stageDuration.observe({ platform: 'linux/arm64', emulated: 'true' }, 3.2);
  m.cacheHits.inc({ platform: 'linux/amd64' }, 5);
  m.bytesPushed.inc(1234);
  m.queueDepth.set({ platform: 'linux/amd64', class: 'native', state: 'waiting' }, 7);
  m.stagesWaiting.set({ platform: 'linux/arm64', tenant: 'a', reason: 'tenant-limit' }, 2);
  m.oldestWait.set({ platform: 'linux/arm64' }, 76);
  const { body, contentType } = await renderMetrics(m.registry);
  assert.match(contentType, /text\/plain/);
  assert.match(body, /buildyard_stages_waiting\{platform="linux\/arm64",tenant="a",reason="tenant-limit"\} 2/);
  assert.match(body, /buildyard_stages_oldest_wait_seconds\{platform="linux\/arm64"\} 76/);
  assert.match(body, /buildyard_stage_duration_seconds_bucket\{le="5",platform="linux\/arm64",emulated="true"\} 1/);
  assert.match(body, /buildyard_stage_duration_seconds_bucket\{le="2.5",platform="linux\/arm64",emulated="true"\} 0/);
  assert.match(body, /buildyard_cache_hits_total\{platform="linux\/amd64"\} 5/);
  assert.match(body, /buildyard_bytes_pushed_total 1234/);
  assert.match(body, /buildyard_queue_depth\{platform="linux\/amd64",class="native",state="waiting"\} 7/);
  assert.match(body, /buildyard_queue_wait_seconds/);
  assert.match(body, /buildyard_cache_misses_total/);
});

test('metricsHandler serves a node:http /metrics endpoint', async () => {
  const m = createMetrics();
  m.bytesPulled.inc(42);
  const handler = metricsHandler(m.registry);
  const server = createServer((req, res) => void handler(req, res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /buildyard_bytes_pulled_total 42/);
  } finally {
    server.close();
  }
});

test('the attacker: a tenant reaching a health port reads no tenant names from /metrics without the metrics token', async () => {
  const m = createMetrics();
  m.stagesRunning.set({ platform: 'linux/amd64', tenant: 'victim-team' }, 1);
  let ready = false;
  const { server, url } = await startHealthServer({ listen: '127.0.0.1:0', setting: 'worker.healthListen', metricsToken: 's3cret', registry: m.registry, ready: async () => ready, notReadyMessage: 'redis unreachable' });
  try {
    for (const authorization of [undefined, 'Bearer wrong', 'Basic czNjcmV0', 's3cret']) {
      const res = await fetch(`${url}/metrics`, { headers: authorization ? { authorization } : {} });
      const body = await res.text();
      assert.equal(res.status, 401, `Authorization: ${authorization}`);
      assert.doesNotMatch(body, /victim-team/);
      assert.equal(body, '/metrics needs the metrics token: send Authorization: Bearer <token>\n');
    }
    const scraped = await fetch(`${url}/metrics?x=1`, { headers: { authorization: 'Bearer s3cret' } });
    assert.equal(scraped.status, 200);
    assert.match(await scraped.text(), /buildyard_stages_running\{platform="linux\/amd64",tenant="victim-team"\} 1/);
    // Probes need no token.
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const notReady = await fetch(`${url}/readyz`);
    assert.deepEqual([notReady.status, await notReady.text()], [503, 'redis unreachable\n']);
    ready = true;
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    assert.equal((await fetch(`${url}/other`)).status, 404);
  } finally {
    server.close();
  }
});

test('startHealthServer without a token serves /metrics to anyone, and refuses an address without a port', async () => {
  const m = createMetrics();
  m.bytesPulled.inc(7);
  const { server, url } = await startHealthServer({ listen: '127.0.0.1:0', setting: 'frontend.healthListen', registry: m.registry });
  try {
    const res = await fetch(`${url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /buildyard_bytes_pulled_total 7/);
    assert.equal((await fetch(`${url}/readyz`)).status, 404, 'no readiness check was given');
  } finally {
    server.close();
  }
  await assert.rejects(startHealthServer({ listen: 'localhost', setting: 'worker.healthListen' }), /^Error: worker.healthListen "localhost" is not HOST:PORT: set it to e.g. 127.0.0.1:9374$/);
});

test('requestedExporters follows the OTEL_* variables', () => {
  assert.deepEqual(requestedExporters({}), []);
  assert.deepEqual(requestedExporters({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), ['otlp']);
  assert.deepEqual(requestedExporters({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }), ['otlp']);
  assert.deepEqual(requestedExporters({ OTEL_TRACES_EXPORTER: 'otlp' }), ['otlp']);
  assert.deepEqual(requestedExporters({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), []);
  assert.deepEqual(requestedExporters({ OTEL_TRACES_EXPORTER: 'console' }), ['console']);
});

test('trace context crosses a carrier: the child span joins the parent trace', async () => {
  const memory = new InMemorySpanExporter();
  const t = startTelemetry('test-svc', { env: {}, spanProcessors: [new SimpleSpanProcessor(memory)] });
  try {
    assert.deepEqual(t.exporters, []);
    assert.deepEqual(injectTraceContext(), {}, 'no active span, nothing to carry');
    let carrier: Record<string, string> = {};
    const parent = t.tracer.startSpan('submit');
    await trace.getTracer('x').startActiveSpan('frontend', async (span) => {
      carrier = injectTraceContext();
      span.end();
    });
    parent.end();
    assert.match(carrier.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    // As a worker would: a fresh span under the extracted context.
    withExtractedContext(carrier, () => t.tracer.startSpan('stage').end());
    await t.forceFlush();
    const spans = memory.getFinishedSpans();
    const frontend = spans.find((s) => s.name === 'frontend')!;
    const stage = spans.find((s) => s.name === 'stage')!;
    assert.equal(stage.spanContext().traceId, frontend.spanContext().traceId);
    assert.equal(stage.parentSpanContext?.spanId, frontend.spanContext().spanId);
    assert.equal(withExtractedContext(undefined, () => 7), 7);
  } finally {
    await t.shutdown();
  }
});

test('spans are exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set', async () => {
  const posts: { url: string; bytes: number }[] = [];
  const server = createServer((req: IncomingMessage, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => { bytes += c.length; });
    req.on('end', () => { posts.push({ url: req.url ?? '', bytes }); res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}'); });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint; // the OTLP exporter reads it from the process
  // Uninstrumented: the collector's own server span for the POST would be a second export.
  const t = startTelemetry('otlp-test', { instrument: false });
  try {
    assert.deepEqual(t.exporters, ['otlp']);
    t.tracer.startSpan('build').end();
    await t.forceFlush();
    assert.equal(posts.length, 1);
    assert.equal(posts[0].url, '/v1/traces');
    assert.ok(posts[0].bytes > 0);
  } finally {
    await t.shutdown();
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT; else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
    server.close();
  }
});

test('log lines inside a span carry its trace id', async () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
  const memory = new InMemorySpanExporter();
  const t = startTelemetry('log-test', { env: {}, spanProcessors: [new SimpleSpanProcessor(memory)] });
  try {
    const log = createLogger('worker', { destination: sink });
    log.info('outside');
    t.tracer.startActiveSpan('s', (span) => { log.info({ stage: 'a' }, 'inside'); span.end(); });
    const [outside, inside] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(outside.trace_id, undefined);
    assert.equal(inside.msg, 'inside');
    assert.equal(inside.name, 'worker');
    assert.match(String(inside.trace_id), /^[0-9a-f]{32}$/);
  } finally {
    await t.shutdown();
  }
});
