// The `buildyard` executable. When the OTEL_* variables ask for spans, telemetry starts before
// the rest is imported, so OpenTelemetry's gRPC instrumentation patches @grpc/grpc-js as it
// loads (see @buildyard/telemetry): each call to the builder carries the command's trace
// context, and the frontend's and workers' spans join the command's trace. Without them neither
// the SDK nor @opentelemetry/api is loaded (start-up time, and spans nobody exports help nobody).
// bin/buildyard.js runs the bundle of this file (scripts/bundle.mjs), which keeps the telemetry
// packages external for that reason, and calls through the node_modules copy of @grpc/grpc-js
// (the one the instrumentation patches) only when tracing; otherwise through its bundled copy.
import { preconnectTarget } from './preconnectArgs.js';

// A reader that closes the pipe early (`buildyard --help | head`) ends the output, as it ends a
// Go CLI (SIGPIPE): exit quietly instead of throwing EPIPE at the user.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});
const tracing = ['OTEL_TRACES_EXPORTER', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'].some((v) => process.env[v]);
const args = process.argv.slice(2);
// `buildyard --version` alone (scripts ask it to check the install) prints what commander's
// --version prints without building the command tree.
const versionOnly = !tracing && args.length === 1 && (args[0] === '--version' || args[0] === '-V');
const requireFromCodeCache = (globalThis as Record<symbol, ((spec: string) => unknown) | undefined>)[Symbol.for('buildyard.cli.require')];
// No top-level await: the bundle of this file is CommonJS (see scripts/bundle.mjs), which spares
// `--version` and `--help` Node's ES module loader.
async function main(): Promise<void> {
  const telemetry = tracing ? (await import('@buildyard/telemetry')).startTelemetry('buildyard-cli') : undefined;
  // The bundle then calls through the node_modules copy of @grpc/grpc-js, the one the instrumentation
  // patched, instead of its own (faster to load) copy: see grpcSwitch() in scripts/bundle.mjs.
  if (telemetry) (globalThis as Record<symbol, unknown>)[Symbol.for('buildyard.cli.externalGrpc')] = true;
  // `buildyard build` starts dialling its builder first: the handshakes then overlap loading
  // commander and the build code, instead of waiting behind them (about half of its start-up).
  const preconnect = versionOnly ? undefined : preconnectTarget(args);
  // The bundled gRPC (scripts/bundle.mjs, GRPC_FILE) from V8's code cache when the launcher keeps
  // one (bin/codeCache.js, Node 20): the preconnect chunk's require() then finds it loaded.
  if (preconnect && !telemetry) requireFromCodeCache?.('./buildyard-grpc.cjs');
  const preconnected = preconnect ? await import('./load/preconnect.js') : undefined;
  await preconnected?.preconnect(preconnect?.builder);

  try {
    if (versionOnly) {
      process.stdout.write(`${(await import('./version.js')).CLIENT_VERSION}\n`);
    } else if (!telemetry) {
      const { run } = await import('./program.js');
      process.exitCode = await run(process.argv);
    } else {
      const { run } = await import('./program.js');
      const { SpanStatusCode } = await import('@opentelemetry/api');
      // The command's name only: arguments can hold secrets (login -p, --secret).
      const command = args.find((a) => !a.startsWith('-')) ?? '';
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
  } finally {
    // A build that ended before its first call (a usage error, --call) leaves the channel unused.
    preconnected?.releasePreconnected();
  }
}

// A failure nobody caught ends the process as an uncaught exception does (stack, exit code 1).
void main();
