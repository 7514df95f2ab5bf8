import { connect } from 'node:net';
import type { SupervisedProcess } from './supervise.js';

/**
 * Waits until the cluster's BuildKit endpoint (`BUILDYARD_BUILDKIT_LISTEN`) accepts connections
 * on `endpoint` (a port on 127.0.0.1, or `tcp://host:port`). Connects rather than reading the
 * frontend's log, which keeps only its last 16 KiB; fails at once, with the frontend's last
 * lines, when the frontend has exited (e.g. the port was taken before it could bind).
 */
export async function waitForBuildkitEndpoint(cluster: { frontendProcess: SupervisedProcess }, endpoint: number | string, ms = 120_000): Promise<void> {
  const { host, port } = typeof endpoint === 'number' ? { host: '127.0.0.1', port: endpoint } : parseEndpoint(endpoint);
  const deadline = Date.now() + ms;
  for (;;) {
    const frontend = cluster.frontendProcess;
    if (frontend.child.exitCode !== null || frontend.child.signalCode !== null) {
      throw new Error(`the frontend exited before its BuildKit endpoint ${host}:${port} listened; its last output:\n${lastLines(frontend.output())}`);
    }
    if (await accepts(host, port)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for the BuildKit endpoint ${host}:${port}; the frontend's last output:\n${lastLines(frontend.output())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function parseEndpoint(endpoint: string): { host: string; port: number } {
  const url = new URL(endpoint.includes('://') ? endpoint : `tcp://${endpoint}`);
  return { host: url.hostname, port: Number(url.port) };
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => { socket.destroy(); resolve(false); });
  });
}

function lastLines(output: string): string {
  return output.trimEnd().split('\n').slice(-15).map((l) => `  ${l.slice(0, 400)}`).join('\n');
}
