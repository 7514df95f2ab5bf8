// Solve without a context upload, for requests no honest client sends (e.g. another tenant's context id).
import { credentials } from '@grpc/grpc-js';
import { ControlClient, SolveRequest, type SolveEvent } from '@buildyard/proto';
import type { Cluster } from '@buildyard/testkit';
import { bearer } from '../grpcClient.js';

export async function solveRaw(cluster: Pick<Cluster, 'address'>, token: string, request: Partial<SolveRequest>, onEvent?: (e: SolveEvent) => void): Promise<{ events: SolveEvent[]; error?: SolveEvent['error']; result?: SolveEvent['result'] }> {
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const events: SolveEvent[] = [];
    for await (const e of control.solve(SolveRequest.fromPartial({ dockerfileName: 'Dockerfile', ...request }), bearer(token))) {
      events.push(e as SolveEvent);
      onEvent?.(e as SolveEvent);
    }
    return { events, error: events.find((e) => e.error)?.error, result: events.find((e) => e.result)?.result };
  } finally {
    control.close();
  }
}
