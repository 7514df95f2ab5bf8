// OpenTelemetry's own instrumentations trace gRPC and HTTP once startTelemetry() has run before
// the modules are imported (as the apps' entry points do): the server continues the client's
// trace from the call's metadata or headers without any code of ours.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTelemetry } from './index.js';

const memory = new InMemorySpanExporter();
const telemetry = startTelemetry('instrumented', { env: {}, spanProcessors: [new SimpleSpanProcessor(memory)] });
// Imported only now, as an app's entry point imports the rest of the app after startTelemetry().
const grpc = await import('@grpc/grpc-js');
const http = await import('node:http');

const childOf = (child: ReadableSpan, parent: ReadableSpan) =>
  child.spanContext().traceId === parent.spanContext().traceId && child.parentSpanContext?.spanId === parent.spanContext().spanId;

test('a gRPC call gets client and server spans; the handler runs inside the server span', async () => {
  const codec = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
  const service = { Echo: { path: '/test.v1.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: codec.serialize, requestDeserialize: codec.deserialize, responseSerialize: codec.serialize, responseDeserialize: codec.deserialize } };
  const server = new grpc.Server();
  server.addService(service, {
    Echo: (call: { request: Buffer }, callback: (err: null, value: Buffer) => void) => {
      trace.getTracer('handler').startActiveSpan('handler work', (span) => { span.end(); callback(null, call.request); });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as { Echo(req: Buffer, cb: (err: Error | null, res: Buffer) => void): void; close(): void };
  try {
    const root = telemetry.tracer.startSpan('caller');
    const reply = await context.with(trace.setSpan(context.active(), root), () => new Promise<Buffer>((resolve, reject) => client.Echo(Buffer.from('hi'), (err, res) => (err ? reject(err) : resolve(res)))));
    root.end();
    assert.equal(reply.toString(), 'hi');
    await telemetry.forceFlush();
    const spans = memory.getFinishedSpans();
    const clientSpan = spans.find((s) => s.kind === SpanKind.CLIENT && s.name === 'grpc.test.v1.Echo/Echo');
    const serverSpan = spans.find((s) => s.kind === SpanKind.SERVER && s.name === 'grpc.test.v1.Echo/Echo');
    const work = spans.find((s) => s.name === 'handler work');
    assert.ok(clientSpan && serverSpan && work, `spans: ${spans.map((s) => `${s.kind}:${s.name}`).join(', ')}`);
    assert.ok(childOf(clientSpan, spans.find((s) => s.name === 'caller')!), 'the client span is the caller\'s child');
    assert.ok(childOf(serverSpan, clientSpan), 'the server continues the trace from the call\'s metadata');
    assert.ok(childOf(work, serverSpan), 'the handler\'s own spans are children of the server span');
  } finally {
    client.close();
    server.forceShutdown();
    memory.reset();
  }
});

test('an HTTP request gets client and server spans; probe paths get none', async () => {
  const server = http.createServer((req, res) => res.writeHead(200).end(req.url));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    const root = telemetry.tracer.startSpan('caller');
    await context.with(trace.setSpan(context.active(), root), async () => {
      assert.equal(await (await fetch(`${base}/v2/`)).text(), '/v2/');
      await new Promise<void>((resolve, reject) => http.get(`${base}/plain`, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
    });
    root.end();
    assert.equal(await (await fetch(`${base}/healthz`)).text(), '/healthz');
    await telemetry.forceFlush();
    const spans = memory.getFinishedSpans();
    const servers = spans.filter((s) => s.kind === SpanKind.SERVER);
    const clients = spans.filter((s) => s.kind === SpanKind.CLIENT);
    const caller = spans.find((s) => s.name === 'caller')!;
    assert.equal(clients.length, 2, `one client span for fetch, one for http.get: ${spans.map((s) => `${s.kind}:${s.name}`).join(', ')}`);
    for (const c of clients) assert.ok(childOf(c, caller));
    assert.equal(servers.length, 2, 'no server span for /healthz');
    for (const s of servers) assert.ok(clients.some((c) => childOf(s, c)), 'each server span continues its client\'s trace');
  } finally {
    server.close();
    memory.reset();
  }
});

test('a Fastify route gets its own span inside the HTTP server span', async () => {
  const { default: fastify } = await import('fastify');
  const app = fastify();
  app.get('/api/builds/:id', async (req) => ({ id: (req.params as { id: string }).id }));
  app.get('/healthz', async () => 'ok');
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  try {
    assert.deepEqual(await (await fetch(`${base}/api/builds/b1`)).json(), { id: 'b1' });
    assert.equal(await (await fetch(`${base}/healthz`)).text(), 'ok');
    await telemetry.forceFlush();
    const spans = memory.getFinishedSpans();
    const server = spans.find((s) => s.kind === SpanKind.SERVER);
    const route = spans.find((s) => s.attributes['http.route'] === '/api/builds/:id' && s.kind !== SpanKind.SERVER);
    assert.ok(server && route, `spans: ${spans.map((s) => `${s.kind}:${s.name}`).join(', ')}`);
    const ancestors = (span: ReadableSpan): ReadableSpan[] => {
      const parent = spans.find((p) => p.spanContext().spanId === span.parentSpanContext?.spanId);
      return parent ? [parent, ...ancestors(parent)] : [];
    };
    assert.ok(ancestors(route).includes(server), `the route span is inside the HTTP server span: ${[route, ...ancestors(route)].map((x) => x.name).join(' < ')}`);
    assert.equal(spans.filter((s) => s.kind === SpanKind.SERVER).length, 1, 'no span for /healthz');
  } finally {
    await app.close();
    memory.reset();
  }
});

test.after(() => telemetry.shutdown());
