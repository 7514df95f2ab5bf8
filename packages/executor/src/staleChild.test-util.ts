// Child process for cleanupStale.test.ts: starts a long-running container on the default network
// (its own namespace, veth and nftables table), then waits to be killed.
import { RuncExecutor } from './RuncExecutor.js';

const [stateDir, rootfs, sleepArg] = process.argv.slice(2) as [string, string, string];
const executor = new RuncExecutor({ stateDir });
await executor.run({
  id: 'stale', rootfs, mounts: [], stdout: process.stdout,
  meta: { args: ['/bin/sh', '-c', `echo ready; exec sleep ${sleepArg}`], env: [], cwd: '/', user: '', network: 'default' },
});
