import { context, propagation, type Context } from '@opentelemetry/api';

// Trace context through job data (Redis), where no instrumentation carries it. gRPC and HTTP
// calls carry theirs through OpenTelemetry's instrumentations (startTelemetry).

/**
 * The active span's W3C trace context (`traceparent`, maybe `tracestate`) as a plain record,
 * to carry in job data or headers. Empty when no span is active or telemetry is not started.
 */
export function injectTraceContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

/** Runs `fn` with the trace context from `carrier` active, so spans it starts join that trace. */
export function withExtractedContext<T>(carrier: Record<string, string> | undefined, fn: () => T): T {
  const ctx = propagation.extract(context.active(), carrier ?? {});
  return context.with(ctx, fn);
}
