// Loaded by main.ts for `buildyard build` before commander: the builder lookup, gRPC and the channel, not the stubs.
export { preconnect, releasePreconnected } from '@buildyard/client';
