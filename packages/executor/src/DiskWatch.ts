// The disk quota of a RUN step: what it adds to its root filesystem, i.e. the size of its
// overlay upper dir. No project quotas are assumed (ext4 and xfs need them enabled at mount
// time, and the upper dir is on the worker's state filesystem), so the executor measures: while
// the step runs, often enough to stop a runaway writer early (the interval grows with the cost
// of a walk), and once more after it exits, which is what decides.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { diskUsage } from '@buildyard/snapshot';

/** The overlay upper dir behind a mount point, from /proc/self/mountinfo; undefined when the
 *  rootfs is not an overlay mount (then the rootfs itself is measured for growth). */
export function upperDirOf(mountpoint: string): string | undefined {
  let info: string;
  try { info = readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return undefined; }
  let upper: string | undefined;
  for (const line of info.split('\n')) {
    const [pre, post] = line.split(' - ');
    if (!pre || !post) continue;
    if (unescape(pre.split(' ')[4] ?? '') !== mountpoint) continue;
    const [fstype, , options = ''] = post.split(' ');
    if (fstype !== 'overlay') { upper = undefined; continue; }
    // The last mount on the point is the visible one.
    upper = options.split(',').find((o) => o.startsWith('upperdir='))?.slice('upperdir='.length);
  }
  if (!upper || isAbsolute(upper)) return upper;
  // A snapshotter that mounts with relative paths: they are relative to one of the mount
  // point's ancestors (its working directory when it mounted).
  for (let dir = dirname(mountpoint); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, upper))) return join(dir, upper);
  }
  return undefined;
}

function unescape(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * What a step's tree costs: its blocks, or its files' sizes where those are larger. A sparse file
 * (`dd seek=500G`) takes a few blocks here, but its layer carries, and every unpack writes, all
 * of it.
 */
async function stepUsage(dir: string): Promise<number> {
  const [blocks, sizes] = await Promise.all([diskUsage(dir), diskUsage(dir, { apparent: true })]);
  return Math.max(blocks, sizes);
}

export class DiskWatch {
  private timer?: NodeJS.Timeout;
  private stopped = false;

  /** `baseline`: bytes already there that do not count (a plain-directory rootfs). */
  constructor(private readonly dir: string, private readonly limit: number, private readonly baseline = 0) {}

  static async start(dir: string, limit: number, measureBaseline: boolean, onExceeded: () => void): Promise<DiskWatch> {
    const watch = new DiskWatch(dir, limit, measureBaseline ? await stepUsage(dir) : 0);
    watch.schedule(1000, onExceeded);
    return watch;
  }

  /** Bytes the step added so far. */
  async used(): Promise<number> {
    return Math.max(0, (await stepUsage(this.dir)) - this.baseline);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(delayMs: number, onExceeded: () => void): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = performance.now();
      void this.used().then((bytes) => {
        if (this.stopped) return;
        if (bytes > this.limit) { onExceeded(); return; }
        this.schedule(Math.max(1000, 4 * (performance.now() - started)), onExceeded);
      });
    }, delayMs);
    this.timer.unref();
  }
}
