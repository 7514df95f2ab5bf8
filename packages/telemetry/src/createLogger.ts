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

/**
 * A main process's loggers: `log` at the configured level (`log.level`), and `announce` for the
 * few start-up lines that say where the process listens — those are its interface to whoever
 * started it (supervisors and test clusters wait for them), so they print at any level.
 */
export function processLoggers(name: string, level: string): { log: Logger; announce: Logger } {
  return { log: createLogger(name, { level }), announce: createLogger(name, { level: 'info' }) };
}

/**
 * Logs a promise rejection nobody handled instead of letting Node end the process: one failed
 * Redis write (a progress event, a heartbeat) must not take a worker and its running stages down.
 */
export function logUnhandledRejections(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.error({ err: reason instanceof Error ? reason.message : String(reason), stack: reason instanceof Error ? reason.stack : undefined }, 'unhandled promise rejection');
  });
}
