// buildyard-dashboard's entry point. Telemetry starts before the rest of the app is imported:
// OpenTelemetry's instrumentations patch @grpc/grpc-js and node:http when they are first loaded,
// and an ES module binds its imports as it loads, so anything imported earlier would stay untraced.
import { startTelemetry } from '@buildyard/telemetry';

startTelemetry('buildyard-dashboard');
await import('./dashboard.js'); // its own startTelemetry('buildyard-dashboard') call gets this instance
