// The `buildyard` executable. When the OTEL_* variables ask for spans, telemetry starts before
// the rest is imported, so OpenTelemetry's gRPC instrumentation patches @grpc/grpc-js as it
// loads (see @buildyard/telemetry): each call to the builder carries the command's trace
// context, and the frontend's and workers' spans join the command's trace. Without them the
// SDK is not even loaded (it costs start-up time, and spans nobody exports help nobody).
import { SpanStatusCode } from '@opentelemetry/api';
import type { Telemetry } from '@buildyard/telemetry';

const tracing = ['OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'].some((v) => process.env[v]);
const telemetry: Telemetry | undefined = tracing ? (await import('@buildyard/telemetry')).startTelemetry('buildyard-cli') : undefined;
const { run } = await import('./program.js');

if (!telemetry) {
  process.exitCode = await run(process.argv);
} else {
  // The command's name only: arguments can hold secrets (login -p, --secret).
  const command = process.argv.slice(2).find((a) => !a.startsWith('-')) ?? '';
  process.exitCode = await telemetry.tracer.startActiveSpan(`buildyard ${command}`.trim(), async (span) => {
    try {
      const code = await run(process.argv);
      if (code !== 0) span.setStatus({ code: SpanStatusCode.ERROR, message: `exit code ${code}` });
      return code;
    } finally {
      span.end();
    }
  });
  await telemetry.shutdown(); // exports what is still batched
}
