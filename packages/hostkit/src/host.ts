import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** Ports this process has handed out: never offered twice, to two services of the same test. */
const handedOut = new Set<number>();

/**
 * Where free ports are looked for: below the kernel's ephemeral range (ip_local_port_range).
 * A port the kernel picked for bind(0) comes from that range, the one outgoing connections take
 * their local ports from, so one of the suite's many loopback connections could take it between
 * this check and the server's bind, and the server would fail with EADDRINUSE.
 */
function searchRange(): [number, number] {
  try {
    const [low] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (low > 12_000) return [10_000, low];
  } catch { /* not Linux: the range below is below the usual defaults */ }
  return [10_000, 32_768];
}

/** A TCP port free on 127.0.0.1 right now (the caller binds it soon after), outside the ephemeral range, never one this process handed out before. */
export async function freePort(): Promise<number> {
  const [low, high] = searchRange();
  for (;;) {
    const port = low + randomInt(high - low);
    if (handedOut.has(port)) continue;
    handedOut.add(port); // before the check: a concurrent call must not pick it meanwhile
    if (await bindable(port)) return port;
  }
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;
}

export function requireCommand(command: string, pkg: string): void {
  if (!hasCommand(command)) throw new Error(`${command} not found: install Debian's ${pkg} (run infra/dev/setup.sh as root)`);
}
