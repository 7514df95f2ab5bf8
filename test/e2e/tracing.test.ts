// One trace covers the client (a gRPC client sending traceparent, or the buildyard CLI), the
// frontend and the workers: spans exported over OTLP by the real processes reach a local
// collector under the client's trace id, linked parent to child across the processes (gRPC
// metadata into the frontend, job data through the scheduler into the workers). The assertions name the spans a user looks for and their links, not the whole
// list: instrumentations may add spans (HTTP calls to the registry, say) without breaking this.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { startCluster, until, type Cluster, appCommand, testWorkDir } from '@buildyard/testkit';
import { solve } from './grpcClient.js';

interface ExportedSpan { traceId: string; spanId: string; parentSpanId: string; name: string; kind: number; service: string }
interface OtlpJson {
  resourceSpans: Array<{
    resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
    scopeSpans: Array<{ spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number }> }>;
  }>;
}
const SPAN_KIND_SERVER = 2; // OTLP's numbering (the API's SpanKind.SERVER is 1)

const spans: ExportedSpan[] = [];
const collector = createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    const payload = JSON.parse(body) as OtlpJson;
    for (const rs of payload.resourceSpans) {
      const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
      for (const ss of rs.scopeSpans) {
        for (const s of ss.spans) spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, kind: s.kind, service });
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
let collectorUrl = '';
let cluster: Cluster;

before(async () => {
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  collectorUrl = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
  cluster = await startCluster({ workers: 1, env: { ...otlpEnv(), OTEL_BSP_SCHEDULE_DELAY: '200' } });
});
// The cluster first (its processes flush their last spans as they stop), then the collector
// with every connection: an exporter's keep-alive socket would keep this file from exiting.
after(async () => {
  try {
    await cluster?.stop();
  } finally {
    collector.closeAllConnections();
    collector.close();
  }
});

function otlpEnv(): Record<string, string> {
  return { OTEL_EXPORTER_OTLP_ENDPOINT: collectorUrl, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' };
}

const inTrace = (traceId: string) => spans.filter((s) => s.traceId === traceId);
/** Spans of the trace whose parent is neither `rootParent` nor a span of the trace. */
const orphans = (traceId: string, rootParent: string) =>
  inTrace(traceId).filter((s) => s.parentSpanId !== rootParent && !inTrace(traceId).some((p) => p.spanId === s.parentSpanId));

test('one trace links the client, the frontend\'s gRPC server, solve and plan spans, and the workers\' stage and vertex spans', async () => {
  const traceId = randomBytes(16).toString('hex');
  const clientSpanId = randomBytes(8).toString('hex');
  const context = testWorkDir('buildyard-trace-');
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo traced-${traceId} > /t\n`);
  const outcome = await solve(cluster, context, { platforms: ['linux/amd64'] }, { metadata: { traceparent: `00-${traceId}-${clientSpanId}-01` } });
  assert.equal(outcome.error, undefined, outcome.error?.message);

  const traced = () => inTrace(traceId);
  const find = (service: string, name: string) => traced().find((s) => s.service === service && s.name === name);
  const grpcServer = () => traced().find((s) => s.service === 'buildyardd' && s.kind === SPAN_KIND_SERVER && s.name === 'grpc.buildyard.v1.Control/Solve');
  // Every span's parent is the client's span or a span of the same trace: one tree, nothing lost.
  const lost = () => orphans(traceId, clientSpanId);
  // Spans leave in batches; wait for them to arrive (the deadline only bounds a hang).
  await until('the build\'s spans at the collector, each with its parent', () =>
    Boolean(grpcServer() && find('buildyardd', 'solve') && find('buildyardd', 'plan') && find('buildyard-worker', 'stage') && find('buildyard-worker', 'vertex')) && lost().length === 0, 60_000, 100)
    .catch(() => undefined); // the assertions below name what is missing
  const seen = traced().map((s) => `${s.service}:${s.name}`).join(', ');

  const server = grpcServer();
  assert.ok(server, `the frontend's gRPC instrumentation traced Control/Solve (spans seen: ${seen})`);
  assert.equal(server.parentSpanId, clientSpanId, 'the frontend continues the client\'s span from the call\'s traceparent');
  const solveSpan = find('buildyardd', 'solve');
  assert.ok(solveSpan, `a solve span (spans seen: ${seen})`);
  assert.equal(solveSpan.parentSpanId, server.spanId, 'solve runs inside the gRPC server span');
  assert.equal(find('buildyardd', 'plan')?.parentSpanId, solveSpan.spanId, 'plan is a step of solve');
  const stages = traced().filter((s) => s.service === 'buildyard-worker' && s.name === 'stage');
  assert.ok(stages.length > 0, `the worker's stage spans (spans seen: ${seen})`);
  for (const stage of stages) assert.equal(stage.parentSpanId, solveSpan.spanId, 'the worker continues solve\'s trace from the stage job');
  const vertices = traced().filter((s) => s.service === 'buildyard-worker' && s.name === 'vertex');
  assert.ok(vertices.length > 0, `the worker's vertex spans (spans seen: ${seen})`);
  for (const v of vertices) assert.ok(stages.some((s) => s.spanId === v.parentSpanId), 'each vertex is a step of a stage');
  assert.deepEqual(lost().map((s) => `${s.service}:${s.name}`), [], 'no span of the trace lost its parent');
});

test('`buildyard build` starts the trace: its command span holds its gRPC calls, and the frontend and worker spans join it', async () => {
  const work = testWorkDir('buildyard-trace-cli-');
  const marker = randomBytes(8).toString('hex');
  writeFileSync(join(work, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo cli-${marker} > /t\n`);
  // Asynchronously: the CLI exports to the collector in this process before it exits.
  const child = spawn(process.execPath, [...appCommand('cli'), 'build', '--progress', 'plain', work], {
    cwd: work, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token, ...otlpEnv() },
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const [code] = await once(child, 'exit') as [number | null];
  assert.equal(code, 0, output.slice(-2000));

  const root = () => spans.find((s) => s.service === 'buildyard-cli' && s.name === 'buildyard build' && s.parentSpanId === '');
  await until('the CLI\'s command span at the collector', () => Boolean(root()), 60_000, 100).catch(() => undefined);
  const command = root();
  assert.ok(command, `the CLI exported its command span (CLI spans seen: ${spans.filter((s) => s.service === 'buildyard-cli').map((s) => s.name).join(', ')})`);
  const traced = () => inTrace(command.traceId);
  const solveServer = () => traced().find((s) => s.service === 'buildyardd' && s.kind === SPAN_KIND_SERVER && s.name === 'grpc.buildyard.v1.Control/Solve');
  await until('the frontend\'s and the worker\'s spans in the CLI\'s trace', () =>
    Boolean(solveServer() && traced().some((s) => s.service === 'buildyard-worker' && s.name === 'stage')) && orphans(command.traceId, '').length === 0, 60_000, 100)
    .catch(() => undefined);
  const seen = traced().map((s) => `${s.service}:${s.name}`).join(', ');
  const server = solveServer();
  assert.ok(server, `the frontend's Control/Solve span is in the CLI's trace (spans seen: ${seen})`);
  const solveClient = traced().find((s) => s.spanId === server.parentSpanId);
  assert.equal(solveClient?.service, 'buildyard-cli', 'its parent is the CLI\'s client span of the Solve call');
  assert.equal(solveClient?.parentSpanId, command.spanId, 'which is inside the command span');
  assert.ok(traced().some((s) => s.service === 'buildyard-worker' && s.name === 'stage'), `the worker's stage span is in the CLI's trace (spans seen: ${seen})`);
  assert.deepEqual(orphans(command.traceId, '').filter((s) => s !== command).map((s) => `${s.service}:${s.name}`), [], 'no span of the trace lost its parent');
});
