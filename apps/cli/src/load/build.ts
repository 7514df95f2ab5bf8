// Loaded by `buildyard build` only: context sync, gRPC, proto stubs and the progress renderers.
export { runBuild } from '@buildyard/client';
