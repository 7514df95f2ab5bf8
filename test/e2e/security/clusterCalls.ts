// Small gRPC helpers shared by the reliability and security e2e tests: unary calls with a
// deadline, raw ContextSync exchanges (to send what no honest client would) and liveness checks.
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  ContextSyncClient, ControlClient, type ContextEntry, type InfoResponse, type StatusResponse, type DiskUsageResponse, type SyncResponse,
} from '@buildyard/proto';
import type { Cluster } from '@buildyard/testkit';
import { bearer } from '../grpcClient.js';

type Addr = Pick<Cluster, 'address'>;

export function unary<Res>(cluster: Addr, method: 'info' | 'status' | 'diskUsage' | 'cancel', req: object, token: string | undefined, timeoutMs = 15_000): Promise<Res> {
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  const deadline = new Date(Date.now() + timeoutMs);
  return new Promise<Res>((resolve, reject) => {
    const md = token === undefined ? bearer('') : bearer(token);
    if (token === undefined) md.remove('authorization');
    (control[method] as unknown as (r: object, m: typeof md, o: { deadline: Date }, cb: (e: ServiceError | null, r: Res) => void) => void)
      .call(control, req, md, { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
  }).finally(() => control.close());
}

export const info = (c: Addr, token: string) => unary<InfoResponse>(c, 'info', {}, token);
export const buildStatus = (c: Addr, token: string, buildId: string) => unary<StatusResponse>(c, 'status', { buildId, limit: 0 }, token);
export const diskUsage = (c: Addr, token: string) => unary<DiskUsageResponse>(c, 'diskUsage', { verbose: true }, token);

/** Sends one entry list over a raw ContextSync stream; resolves with the server's answer or its error. */
export function rawSync(cluster: Addr, token: string, entries: Partial<ContextEntry>[]): Promise<{ responses: SyncResponse[]; error?: ServiceError }> {
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  const call = client.sync(bearer(token), { deadline: new Date(Date.now() + 15_000) });
  const responses: SyncResponse[] = [];
  return new Promise<{ responses: SyncResponse[]; error?: ServiceError }>((resolve) => {
    call.on('data', (r: SyncResponse) => {
      responses.push(r);
      if (r.missingDone) call.write({ uploadDone: true });
    });
    call.on('error', (error: ServiceError) => resolve({ responses, error }));
    call.on('end', () => resolve({ responses }));
    call.write({ entries: { removed: [], entries: entries.map((e) => ({ path: '', mode: 0o100644, size: 0, digest: '', linkTarget: '', modTime: '0', xattrs: [], ...e })) } });
    call.write({ entriesDone: true });
  }).finally(() => { call.cancel(); client.close(); });
}

/** Live node processes of the cluster: the frontend and every worker still answer / exist. */
export function aliveProcesses(cluster: Cluster): { frontend: boolean; workers: boolean[] } {
  return { frontend: cluster.frontendProcess.child.exitCode === null, workers: cluster.workers.map((w) => w.process.child.exitCode === null) };
}

/** The pid of the real node process under a supervised watchdog shell (sh -> node). */
export function childPid(watchdogPid: number): number {
  const kids = readFileSync(`/proc/${watchdogPid}/task/${watchdogPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  if (kids.length === 0) throw new Error(`process ${watchdogPid} has no children`);
  return kids[0];
}

export function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) : 0;
}

/** runc containers still present in any worker's runc root (`<stateDir>/<worker>/runc/runc`). */
/** Containers of the live workers (a killed worker's leftovers are reaped when it restarts). */
export function runcContainers(cluster: Cluster): string[] {
  const out: string[] = [];
  for (const w of cluster.workers.filter((worker) => worker.process.child.exitCode === null && worker.process.child.signalCode === null)) {
    try { out.push(...execFileSync('runc', ['--root', `${w.stateDir}/runc/runc`, 'list', '-q'], { encoding: 'utf8' }).split('\n').filter(Boolean)); } catch { /* no root yet */ }
  }
  return out;
}
