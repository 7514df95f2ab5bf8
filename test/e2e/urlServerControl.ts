// Drives urlServer.mjs (a web server in the "outside" network namespace of
// test/e2e/security/outsideNetwork.ts) for tests of ADD <url>: what it serves, and the requests
// it got. Builds download under the egress policy, which refuses loopback and this host.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Outside } from './security/outsideNetwork.js';

export interface Served { body: string; etag?: string | null; lastModified?: string | null; contentDisposition?: string | null }
export interface Request { method: string; path: string; ifNoneMatch: string | null }

/** urlServer.mjs in the outside namespace, driven line by line. */
export class UrlServer {
  private readonly lines: string[] = [];
  private waiter?: () => void;
  private requests: Request[] = [];

  private constructor(private readonly proc: ChildProcess, readonly base: string) {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      if (line.startsWith('request ')) this.requests.push(JSON.parse(line.slice('request '.length)) as Request);
      else this.lines.push(line);
      this.waiter?.();
    });
    proc.once('exit', () => this.waiter?.());
  }

  static async start(outside: Outside): Promise<UrlServer> {
    const script = fileURLToPath(new URL('./urlServer.mjs', import.meta.url));
    const proc = spawn('ip', ['netns', 'exec', outside.ns, process.execPath, script, outside.web, '8080'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const server = new UrlServer(proc, `http://${outside.web}:8080`);
    await server.next('ready');
    return server;
  }

  /** Waits for the next control line, which must be `expected`. */
  private async next(expected: string): Promise<void> {
    while (this.lines.length === 0) {
      if (this.proc.exitCode !== null) throw new Error(`urlServer.mjs exited with ${this.proc.exitCode}`);
      await new Promise<void>((resolve) => { this.waiter = resolve; });
    }
    assert.equal(this.lines.shift(), expected);
  }

  async serve(file: Served): Promise<void> {
    this.proc.stdin!.write(`${JSON.stringify(file)}\n`);
    await this.next('ok');
  }

  /** The requests made since the last call, as "METHOD If-None-Match" (every one seen: see urlServer.mjs). */
  async takeRequests(): Promise<string[]> {
    this.proc.stdin!.write('{"sync":true}\n');
    await this.next('synced');
    const taken = this.requests.map((r) => `${r.method} ${r.ifNoneMatch ?? '-'}`);
    this.requests = [];
    return taken;
  }

  stop(): void {
    this.proc.kill('SIGKILL');
  }
}
