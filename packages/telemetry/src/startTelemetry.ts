import { createRequire, syncBuiltinESMExports } from 'node:module';
import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator, W3CBaggagePropagator, CompositePropagator } from '@opentelemetry/core';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

export interface TelemetryOptions {
  /** Defaults to process.env; read for OTEL_* variables. */
  env?: NodeJS.ProcessEnv;
  /** Extra span processors (tests pass one over an InMemorySpanExporter). */
  spanProcessors?: SpanProcessor[];
  /**
   * Trace gRPC (@grpc/grpc-js clients and servers), node:http/https, fetch and Fastify routes
   * with OpenTelemetry's instrumentations (default true). Only modules imported after
   * startTelemetry() are patched: apps start telemetry in their entry module and import the
   * rest afterwards.
   */
  instrument?: boolean;
}

export interface Telemetry {
  tracer: Tracer;
  /** Which exporters the OTEL_* variables turned on (empty: spans are only propagated). */
  exporters: string[];
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Which trace exporters the standard variables ask for. OTLP is on when
 * OTEL_TRACES_EXPORTER names it, or when it is unset and an OTLP endpoint is configured;
 * `none` (or nothing configured) exports nothing.
 */
export function requestedExporters(env: NodeJS.ProcessEnv): string[] {
  const named = (env.OTEL_TRACES_EXPORTER ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (named.includes('none') || env.OTEL_SDK_DISABLED === 'true') return [];
  if (named.length > 0) return named.filter((n) => n === 'otlp' || n === 'console');
  return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? ['otlp'] : [];
}

/** Paths polled by probes and Prometheus: a span each would bury the builds' traces. */
const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The CommonJS modules the instrumentations patch. They patch a module's exports when it is
 * first require()d; an ES module importing a CommonJS one gets its named exports from those
 * same exports, but Node's ESM loader (and tsx's) does not go through require(). Loading them
 * here, after the instrumentations are enabled and before the app imports them, patches the
 * one shared copy, so later `import { Server } from '@grpc/grpc-js'` sees the traced functions
 * without an ESM loader hook.
 */
const PATCHED_MODULES = ['@grpc/grpc-js', 'http', 'https'];

function instrument(provider: NodeTracerProvider): () => void {
  const disable = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new GrpcInstrumentation(),
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => PROBE_PATHS.has((req.url ?? '').split('?')[0]),
        // Background calls (GC, heartbeats) outside any build or request would each start a trace.
        requireParentforOutgoingSpans: true,
      }),
      new UndiciInstrumentation({ requireParentforSpans: true }),
      // Route and hook spans inside the HTTP server span of every Fastify app (the dashboard).
      new FastifyOtelInstrumentation({ registerOnInitialization: true, ignorePaths: (route) => PROBE_PATHS.has(route.url) }),
    ],
  });
  const require = createRequire(import.meta.url);
  for (const name of PATCHED_MODULES) require(name);
  syncBuiltinESMExports(); // `import { request } from 'node:http'` now binds the patched request
  return disable;
}

let active: Telemetry | undefined;

/**
 * Sets up tracing for this process once: W3C trace-context propagation always (so trace ids
 * flow between frontend and workers), OpenTelemetry's gRPC/HTTP/fetch instrumentations, and
 * span export over OTLP/HTTP only when the OTEL_* variables ask for it. The OTLP exporter
 * itself reads the endpoint and headers from them.
 */
export function startTelemetry(serviceName: string, opts: TelemetryOptions = {}): Telemetry {
  if (active) return active;
  const env = opts.env ?? process.env;
  const exporters = requestedExporters(env);
  const processors: SpanProcessor[] = [...(opts.spanProcessors ?? [])];
  if (exporters.includes('otlp')) processors.push(new BatchSpanProcessor(new OTLPTraceExporter()));
  if (exporters.includes('console')) processors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()));
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || serviceName }),
    spanProcessors: processors,
  });
  provider.register({ propagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }) });
  const uninstrument = opts.instrument === false ? () => undefined : instrument(provider);
  const t: Telemetry = {
    tracer: trace.getTracer(serviceName),
    exporters,
    forceFlush: () => provider.forceFlush(),
    shutdown: async () => {
      uninstrument();
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
      active = undefined;
    },
  };
  active = t;
  return t;
}
