import { createServer, type Socket } from 'node:net';
import { MAX_SSH_CONNS_PER_SOCKET, missingSshAgent, type SshRelay } from '@buildyard/contracts';
import type { SshAgentSockets } from '@buildyard/solver';

/**
 * The client's SSH agents for one build's RUN steps on this worker: each connection a step
 * makes to its socket is relayed through Redis to the build's frontend, which opens it to the
 * client's agent. The offer (which ids the client forwards) is read once per stage.
 */
export function relayedSshAgents(relay: SshRelay, buildId: string, onError?: (err: Error) => void): SshAgentSockets {
  let offered: Promise<string[] | undefined> | undefined;
  return {
    missing: async (id) => missingSshAgent(id, await (offered ??= relay.offered(buildId))),
    listen: async (id, path) => {
      const sockets = new Set<Socket>();
      const ended = new AbortController();
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        // Until the relay takes the socket over, a step's client resetting it must not be an
        // unhandled error in the worker; the relay then sees it closed.
        socket.on('error', () => {});
        // A connection that cannot be relayed closes; the step's ssh client reports it.
        relay.requestOpen(buildId, id).then((connId) => relay.relay(socket, buildId, connId, 'worker', ended.signal))
          .catch((err: Error) => { socket.destroy(); onError?.(new Error(`relaying an SSH agent connection of build ${buildId}: ${err.message}`)); });
      });
      // A step opening connections without end is refused past the cap (Node closes them on accept).
      server.maxConnections = MAX_SSH_CONNS_PER_SOCKET;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => { server.off('error', reject); resolve(); });
      });
      return {
        close: async () => {
          // The step has ended: whatever it left connected goes with it, without waiting for the frontend.
          ended.abort();
          for (const socket of sockets) socket.destroy();
          await new Promise<void>((resolve) => server.close(() => resolve()));
        },
      };
    },
  };
}
