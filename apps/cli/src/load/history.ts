// Loaded by `buildyard history ...` only: the builder connection (gRPC, proto) and the renderers.
export { BuilderStore, historyInspect, historyLogs, historyLs, historyRm, withBuilderConnection } from '@buildyard/client';
