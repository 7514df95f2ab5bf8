// Loaded by the actions that talk to a builder (or edit builders.json): gRPC and the proto stubs
// come with it, so program.ts imports it with `await builders()`, never statically.
export {
  BuilderStore, withBuilderConnection, table, formatDiskUsage, formatDiskUsageVerbose, formatInfo, formatPrune, formatWorkers,
} from '@buildyard/client';
