// Launchers for local test services, hand-written because no library starts Debian's daemons
// as children that die with the test process. Each service runs under a tiny shell watchdog
// that kills it when this process disappears, even after SIGKILL, so no redis-server or
// registry outlives a test run. Watchdog and service share a process group of their own, so
// stop() can end both (and anything the service started) at once when the watchdog is slow.
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
# A service that ended by itself: its status is the watchdog's, which is what a test sees.
if ! kill -0 $child 2>/dev/null; then wait $child; exit $?; fi
stop_child
`;

/** How long stop() waits for the watchdog's TERM-then-KILL before it SIGKILLs the whole group. */
const stopDeadlineMs = 8_000;

export function supervise(name: string, command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SupervisedProcess {
  const child = spawn('sh', ['-c', watchdogScript, 'sh', command, ...args], {
    cwd: options.cwd,
    env: { ...process.env, ...options.env, BUILDYARD_PARENT_PID: String(process.pid) },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group (the watchdog leads it; the service is its background job).
    detached: true,
  });
  let log = '';
  const keep = (chunk: Buffer) => { log = (log + chunk.toString()).slice(-16_384); };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killGroup = (signal: NodeJS.Signals) => {
    try { if (child.pid) process.kill(-child.pid, signal); } catch { /* the group is gone */ }
  };
  const service: SupervisedProcess = {
    name,
    child,
    output: () => log,
    kill(signal) {
      for (const pid of childPids(child.pid)) {
        // The watchdog's `sleep` is a child too, and may end between the listing and the kill.
        try { process.kill(pid, signal); } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; }
      }
    },
    async stop() {
      liveServices.delete(service);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        // Under CPU starvation the watchdog's own 5 s loop can take longer than this; killing
        // only the watchdog then would orphan the service, which keeps running and holds this
        // process's pipes open (the test file never exits). So the whole group goes.
        const timer = setTimeout(() => killGroup('SIGKILL'), stopDeadlineMs);
        await exited;
        clearTimeout(timer);
      }
      // Whatever the service started in its group (or the service itself, if the watchdog died
      // first), and the pipes, which a survivor would keep open.
      killGroup('SIGKILL');
      child.stdout?.destroy();
      child.stderr?.destroy();
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
      // Services still running here mean the file was interrupted (by a user, or by
      // scripts/test-guard.mjs because it hung): their last words say where things stood.
      for (const s of liveServices) {
        const tail = s.output().trimEnd().split('\n').slice(-20).map((l) => `  ${l.slice(0, 500)}`).join('\n');
        process.stderr.write(`testkit: stopping ${s.name} (pid ${s.child.pid}) on ${signal}; its last output:\n${tail || '  (none)'}\n`);
      }
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
