import { readFile } from 'node:fs/promises';
import { syscalls as binding } from './native.js';

const MS_RDONLY = 1;
const MS_REMOUNT = 32;
const MS_BIND = 4096;
const MNT_DETACH = 2;

/** Runs one mount system call; a failure says what was mounted where, and why. */
async function syscall(what: string, call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw Object.assign(new Error(`${what} failed: ${e.message} (${e.code})`), { code: e.code });
  }
}

/** Decodes the \ooo escapes /proc/self/mountinfo uses for spaces and other odd bytes. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points currently visible to this process, in mount order. */
export async function listMountPoints(): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return text.split('\n').filter(Boolean).map((line) => unescapeMountPath(line.split(' ')[4]));
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await listMountPoints()).includes(path);
}

// The kernel reads mount options into one page: beyond this the mount fails with EINVAL.
const MAX_MOUNT_OPTIONS = 4000;

export interface OverlayMountSpec {
  /** Lower dirs, top first. Relative paths resolve against `cwd`, which keeps long chains short. */
  lowerDirs: readonly string[];
  upperDir?: string;
  workDir?: string;
  target: string;
  cwd?: string;
  readonly?: boolean;
}

export async function mountOverlay(spec: OverlayMountSpec): Promise<void> {
  const options = [
    // No index/metacopy/redirect: the upper dir must hold full copies so it can be diffed on its own.
    'index=off', 'metacopy=off', 'redirect_dir=off',
    `lowerdir=${spec.lowerDirs.join(':')}`,
    ...(spec.upperDir ? [`upperdir=${spec.upperDir}`, `workdir=${spec.workDir}`] : []),
  ].join(',');
  if (options.length > MAX_MOUNT_OPTIONS) {
    throw new Error(`overlay mount of ${spec.target} needs ${options.length} bytes of options for ${spec.lowerDirs.length} layers (limit ${MAX_MOUNT_OPTIONS}): squash the image into fewer layers`);
  }
  await syscall(`mounting overlay on ${spec.target}`, () => binding.mount('overlay', spec.target, 'overlay', spec.readonly ? MS_RDONLY : 0, options, spec.cwd ?? null));
}

export async function bindMount(source: string, target: string, readonly: boolean): Promise<void> {
  await syscall(`binding ${source} on ${target}`, () => binding.mount(source, target, null, MS_BIND, null, null));
  // As mount(8) does for `-o bind,ro`: a bind mount takes read-only only by a remount.
  if (readonly) await syscall(`making ${target} read-only`, () => binding.mount(null, target, null, MS_BIND | MS_REMOUNT | MS_RDONLY, null, null));
}

/**
 * Binds what a descriptor path (/proc/<pid>/fd/<n>, of this process) names, not recursively:
 * the kernel binds exactly the descriptor's inode, even if the names on its path were swapped
 * for symlinks since it was opened.
 */
export async function bindMountDescriptor(fdPath: string, target: string): Promise<void> {
  await syscall(`binding ${fdPath} on ${target}`, () => binding.mount(fdPath, target, null, MS_BIND, null, null));
}

/**
 * Unmounts every mount stacked on `target` (until the kernel says it is no mount point); falls
 * back to a lazy unmount when it stays busy.
 */
export async function unmount(target: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      await syscall(`unmounting ${target}`, () => binding.umount(target, attempt >= 5 ? MNT_DETACH : 0));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EINVAL' || code === 'ENOENT') return; // not (or no longer) a mount point
      if (code !== 'EBUSY') throw err;
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
  }
  throw new Error(`unmounting ${target} failed: still mounted after 50 unmounts; stop what uses it`);
}
