import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { supervise } from './supervise.js';
import { until } from './until.js';

/** Running (a zombie waiting for its parent counts as gone). */
function alive(pid: number): boolean {
  try { return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')); } catch { return false; }
}

/** A service that ignores SIGTERM and starts a helper of its own; prints both pids. */
const stubborn = ['-c', 'trap "" TERM; sleep 1000 & echo "pids $$ $!"; while :; do sleep 1; done'];

async function pidsOf(service: ReturnType<typeof supervise>): Promise<number[]> {
  await until('the service to print its pids', () => /pids \d+ \d+/.test(service.output()), 30_000);
  return /pids (\d+) (\d+)/.exec(service.output())!.slice(1).map(Number);
}

test('stop() of a service whose watchdog was killed ends the service, its children and its pipes', async () => {
  const service = supervise('stubborn', 'sh', stubborn);
  const pids = await pidsOf(service);
  // The watchdog dies first (as when it is SIGKILLed at stop's deadline): the service is orphaned.
  process.kill(service.child.pid!, 'SIGKILL');
  await until('the watchdog to exit', () => service.child.exitCode !== null || service.child.signalCode !== null, 30_000);
  assert.ok(pids.every(alive), 'the orphaned service still runs before stop()');
  await service.stop();
  await until('the service and its helper to be gone', () => !pids.some(alive), 30_000)
    .catch(() => assert.fail(`pids ${pids.filter(alive).join(', ')} outlived stop()`));
  assert.ok(service.child.stdout!.destroyed && service.child.stderr!.destroyed, 'no pipe keeps this process alive');
});

test('stop() of a service that ignores SIGTERM resolves, with nothing of it left', async () => {
  const service = supervise('stubborn', 'sh', stubborn);
  const pids = await pidsOf(service);
  await service.stop();
  assert.ok(service.child.exitCode !== null || service.child.signalCode !== null, 'the watchdog exited');
  await until('the service and its helper to be gone', () => !pids.some(alive), 30_000)
    .catch(() => assert.fail(`pids ${pids.filter(alive).join(', ')} outlived stop()`));
});

test('a service that ends by itself ends its watchdog with its own status: an exit code, or 128 + the signal', async () => {
  const failing = supervise('failing', 'sh', ['-c', 'exit 3']);
  assert.deepEqual(await once(failing.child, 'exit'), [3, null]);
  const killed = supervise('sleeper', 'sh', ['-c', 'echo "pids $$ $$"; exec sleep 1000']);
  await pidsOf(killed);
  const exited = once(killed.child, 'exit');
  killed.kill('SIGKILL');
  assert.deepEqual(await exited, [137, null]);
  await Promise.all([failing.stop(), killed.stop()]);
});
