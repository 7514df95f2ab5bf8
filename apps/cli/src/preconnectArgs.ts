// Which builder `buildyard build` will dial, read from the arguments before commander has loaded
// (main.ts preconnects to it; see @buildyard/client's preconnect). Only a guess to save time:
// commander parses the same arguments for real, and a guess that misses leaves the build to open
// its own connection.

/** `{ builder }` (undefined: the default builder) for a build that will connect; undefined for anything else. */
export function preconnectTarget(args: readonly string[]): { builder: string | undefined } | undefined {
  if (args[0] !== 'build') return undefined;
  let builder: string | undefined;
  for (let i = 1; i < args.length; i++) {
    const a = args[i];
    if (a === '--') break;
    // Help, and --call/--check (answered from the Dockerfile), dial nothing.
    if (a === '-h' || a === '--help' || a === '--check' || a === '--call' || a.startsWith('--call=')) return undefined;
    if (a === '--builder') builder = args[++i];
    else if (a.startsWith('--builder=')) builder = a.slice('--builder='.length);
  }
  return { builder };
}
