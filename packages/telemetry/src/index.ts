// Public API of @buildyard/telemetry: tracing setup (OpenTelemetry's gRPC/HTTP/fetch
// instrumentations), trace context through job data, Prometheus metrics, pino loggers (levels
// from log.level) and the process-wide unhandled-rejection logger.
export { startTelemetry, requestedExporters, type Telemetry, type TelemetryOptions } from './startTelemetry.js';
export { injectTraceContext, withExtractedContext } from './traceContext.js';
export { createMetrics, getMetrics, metrics, type BuildyardMetrics, type EmulationLabel } from './metrics.js';
export { metricsHandler, renderMetrics } from './metricsHandler.js';
export { startHealthServer, type HealthServerOptions } from './healthServer.js';
export { createLogger, processLoggers, logUnhandledRejections, type Logger, type LoggerOptions } from './createLogger.js';
