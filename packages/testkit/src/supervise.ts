// Launchers for local test services, hand-written because no library starts Debian's daemons
// as children that die with the test process. Each service runs under a tiny shell watchdog
// that kills it when this process disappears, even after SIGKILL, so no redis-server or
// registry outlives a test run.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const liveServices = new Set<SupervisedProcess>();

export interface SupervisedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  output(): string;
  /** Signals the supervised process itself (not its watchdog), e.g. SIGKILL in fault tests. */
  kill(signal: NodeJS.Signals): void;
  stop(): Promise<void>;
}

// TERM first, KILL after 5 s: a service that hangs on shutdown never outlives its watchdog.
const watchdogScript = `
"$@" &
child=$!
stop_child() {
  kill -TERM $child 2>/dev/null
  i=0; while kill -0 $child 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -KILL $child 2>/dev/null
  exit 0
}
trap stop_child TERM INT HUP
while kill -0 "$BUILDYARD_PARENT_PID" 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.3; done
stop_child
`;

export function supervise(name: string, command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SupervisedProcess {
  const child = spawn('sh', ['-c', watchdogScript, 'sh', command, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env, BUILDYARD_PARENT_PID: String(process.pid) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (chunk: Buffer) => { log = (log + chunk.toString()).slice(-16_384); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const service: SupervisedProcess = {
    name,
    child,
    output: () => log,
    kill(signal) {
      for (const pid of childPids(child.pid)) process.kill(pid, signal);
    },
    async stop() {
      liveServices.delete(service);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
  liveServices.add(service);
  installExitHooks();
  return service;
}

function childPids(pid: number | undefined): number[] {
  if (!pid) return [];
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

let hooksInstalled = false;
function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Synchronous best effort on normal exit; the watchdog covers SIGKILL.
  process.once('exit', () => { for (const s of liveServices) s.child.kill('SIGTERM'); });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      void Promise.allSettled([...liveServices].map((s) => s.stop())).then(() => process.exit(130));
    });
  }
}

// One implementation, shared with `buildyard up`.
export { freePort, requireCommand } from '@buildyard/hostkit';

/** Polls `probe` until it resolves true, the process exits, or the deadline passes. */
export async function waitUntilReady(service: SupervisedProcess, probe: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null) {
      throw new Error(`${service.name} exited before it was ready: ${service.output().trim().split('\n').slice(-3).join(' | ')}`);
    }
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  await service.stop();
  throw new Error(`${service.name} did not become ready within ${timeoutMs} ms: ${service.output().trim().split('\n').slice(-3).join(' | ')}`);
}
