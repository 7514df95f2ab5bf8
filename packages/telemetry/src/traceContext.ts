import { context, propagation, type Context, type TextMapGetter } from '@opentelemetry/api';

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

/** What the propagator reads of a gRPC call's metadata (grpc-js Metadata has this shape). */
export interface MetadataLike {
  get(key: string): Array<string | Buffer>;
  getMap(): Record<string, unknown>;
}

const metadataGetter: TextMapGetter<MetadataLike> = {
  keys: (carrier) => Object.keys(carrier.getMap()),
  get: (carrier, key) => carrier.get(key).filter((v): v is string => typeof v === 'string'),
};

/**
 * Runs `fn` in the trace context the registered propagator (W3C trace context and baggage)
 * finds in a gRPC call's metadata, so a client's trace continues in the server's spans.
 */
export function withMetadataContext<T>(metadata: MetadataLike, fn: () => T): T {
  return context.with(propagation.extract(context.active(), metadata, metadataGetter), fn);
}
