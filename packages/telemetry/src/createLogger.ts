import { trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level?: string;
  /** Where lines go (default stdout). */
  destination?: DestinationStream;
}

/**
 * A JSON logger named after the component. Lines written inside a span carry its
 * `trace_id`/`span_id`, so logs and traces of one build can be joined.
 */
export function createLogger(name: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.BUILDYARD_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info';
  const options = {
    name,
    level,
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const c = span.spanContext();
      return { trace_id: c.traceId, span_id: c.spanId };
    },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}
