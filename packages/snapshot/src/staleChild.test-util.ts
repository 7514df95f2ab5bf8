// Child process for the cleanupStale test: prepares a mounted snapshot, reports, then waits to be killed.
import { OverlaySnapshotter } from './OverlaySnapshotter.js';

const [rootDir, key, parent] = process.argv.slice(2);
const active = await new OverlaySnapshotter(rootDir).prepare(key, parent);
process.stdout.write(`ready ${active.mountpoint}\n`);
setInterval(() => undefined, 60_000);
