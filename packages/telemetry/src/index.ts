// Public API of @buildyard/telemetry: tracing setup and propagation, Prometheus metrics, loggers.
export { startTelemetry, requestedExporters, type Telemetry, type TelemetryOptions } from './startTelemetry.js';
export { injectTraceContext, withExtractedContext } from './traceContext.js';
export { createMetrics, getMetrics, metrics, type BuildyardMetrics, type EmulationLabel } from './metrics.js';
export { metricsHandler, renderMetrics } from './metricsHandler.js';
export { createLogger, type Logger, type LoggerOptions } from './createLogger.js';
