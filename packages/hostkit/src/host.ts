import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';

/** Ports this process has handed out: the OS may offer a just-closed port again, to another service of the same test. */
const handedOut = new Set<number>();

/** A TCP port free on 127.0.0.1 right now (the OS picks it; the caller binds it soon after), never one this process handed out before. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await osFreePort();
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

function osFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

export function hasCommand(command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0;
}

export function requireCommand(command: string, pkg: string): void {
  if (!hasCommand(command)) throw new Error(`${command} not found: install Debian's ${pkg} (run infra/dev/setup.sh as root)`);
}
