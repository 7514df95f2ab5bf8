// Gates for RUN steps: a step that runs `gate.wait(name)` reports its arrival to the test and
// blocks inside its RUN until the test opens the gate. Tests use it instead of `sleep N` to
// keep a step running while they act (kill its worker, read its leases, leave and re-attach),
// and to prove two steps ran at the same time (both arrived before either was let through).
// The gate server lives in the outside network namespace (outsideNetwork.ts), which a RUN
// reaches through the worker's default egress network.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { startOutside, type Outside } from './security/outsideNetwork.js';

const serverScript = fileURLToPath(new URL('./gateServer.mjs', import.meta.url));
// Port 80-82 are the outside server's; any other port of its web address is free.
const PORT = 8088;
// Only bounds a hang (e.g. a scheduler that never runs two gated steps at once): far longer
// than a loaded machine takes to start a step.
const ARRIVAL_DEADLINE_MS = 300_000;

export interface Gates {
  /** A shell command (for a RUN) that blocks until gate `name` is open. */
  wait(name: string): string;
  /** Resolves once `count` steps have arrived at gate `name` in all. Rejects if `unless`
   *  settles first (the build ended without getting there) or after a generous deadline. */
  arrived(name: string, options?: { count?: number; unless?: Promise<unknown> }): Promise<void>;
  /** How many steps have arrived at gate `name` so far. */
  arrivals(name: string): number;
  /** Lets every step held at gate `name` through, and every later one at once. */
  open(name: string): void;
  stop(): Promise<void>;
}

export async function startGates(): Promise<Gates> {
  const outside: Outside = await startOutside();
  let server: ChildProcess | undefined;
  try {
    server = spawn('ip', ['netns', 'exec', outside.ns, process.execPath, serverScript, outside.web, String(PORT)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const proc = server;
    const counts = new Map<string, number>();
    const waiters = new Set<() => void>();
    const exited = once(proc, 'exit').then(([code, signal]) => { throw new Error(`the gate server exited (${signal ?? code})`); });
    exited.catch(() => undefined);
    await new Promise<void>((ready, fail) => {
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (line === 'ready') { ready(); return; }
        const m = /^arrived (\S+) (\d+)$/.exec(line);
        if (!m) return;
        counts.set(m[1]!, Number(m[2]));
        for (const w of [...waiters]) w();
      });
      exited.catch(fail);
    });
    const arrivals = (name: string) => counts.get(name) ?? 0;
    return {
      wait: (name) => {
        if (!/^[\w.-]+$/.test(name)) throw new Error(`gate name "${name}": use letters, digits, "_", "." and "-"`);
        // busybox wget: no retries, and no -T (it crashes in busybox 1.35); stop() ends a held one.
        return `wget -q -O - http://${outside.web}:${PORT}/gate/${name}`;
      },
      arrived: async (name, { count = 1, unless } = {}) => {
        let check = () => {};
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            new Promise<void>((done) => { check = () => { if (arrivals(name) >= count) done(); }; waiters.add(check); check(); }),
            new Promise<never>((_, fail) => {
              timer = setTimeout(() => fail(new Error(`timed out after ${ARRIVAL_DEADLINE_MS} ms waiting for ${count} step(s) at gate ${name} (${arrivals(name)} arrived)`)), ARRIVAL_DEADLINE_MS);
            }),
            exited,
            ...(unless ? [unless.then(
              () => { throw new Error(`the build ended before ${count} step(s) reached gate ${name} (${arrivals(name)} arrived)`); },
              (err: Error) => { throw new Error(`the build failed before ${count} step(s) reached gate ${name}: ${err.message}`); },
            )] : []),
          ]);
        } finally {
          waiters.delete(check);
          clearTimeout(timer);
        }
      },
      arrivals,
      open: (name) => { proc.stdin!.write(`open ${name}\n`); },
      stop: async () => {
        proc.kill('SIGKILL');
        await outside.stop();
      },
    };
  } catch (err) {
    server?.kill('SIGKILL');
    await outside.stop();
    throw err;
  }
}
