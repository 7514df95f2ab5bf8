// Stopping a gRPC server that a client cannot keep alive: grpc-js's graceful shutdown waits for
// every open call, and a stalled or hostile client may hold one open forever.
import { status, type Server } from '@grpc/grpc-js';
import { serviceError } from './authenticate.js';

/** How long open calls get to end on their own, and then once told to, before they are cut. */
const OPEN_CALLS_GRACE_MS = 5_000;

/** What a call still open at the stop ends with: UNAVAILABLE is a client's cue to try again. */
export const stoppingError = () => serviceError(status.UNAVAILABLE, 'buildyardd is stopping; run the build again');

/** Takes no new calls; resolves once every open call has ended. */
export function stopAccepting(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => (server ? server.tryShutdown(() => resolve()) : resolve()));
}

/**
 * Waits for `shutdown` (stopAccepting's), bounded: calls still open OPEN_CALLS_GRACE_MS from now
 * are told to end (`endOpenCalls`, with stoppingError()), and what is open OPEN_CALLS_GRACE_MS
 * after that is cut.
 */
export async function boundedShutdown(server: Server | undefined, shutdown: Promise<void>, endOpenCalls: () => void): Promise<void> {
  let cutRest: NodeJS.Timeout | undefined;
  const endCalls = setTimeout(() => {
    endOpenCalls();
    cutRest = setTimeout(() => server?.forceShutdown(), OPEN_CALLS_GRACE_MS);
  }, OPEN_CALLS_GRACE_MS);
  await shutdown;
  clearTimeout(endCalls);
  clearTimeout(cutRest);
}
