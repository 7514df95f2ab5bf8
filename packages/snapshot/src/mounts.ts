import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000, cwd }, (error, _out, stderr) => {
      if (error) reject(new Error(`${cmd} ${args.join(' ')} failed: ${String(stderr).trim() || error.message}`));
      else resolve();
    });
  });
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
  await run('mount', ['-t', 'overlay', 'overlay', ...(spec.readonly ? ['-r'] : []), '-o', options, spec.target], spec.cwd);
}

export async function bindMount(source: string, target: string, readonly: boolean): Promise<void> {
  await run('mount', ['--bind', ...(readonly ? ['-o', 'bind,ro'] : []), source, target]);
}

/**
 * Binds what a descriptor path (/proc/<pid>/fd/<n>) names, not recursively and without letting
 * mount(8) canonicalize it: the kernel then binds exactly the descriptor's inode, even if the
 * names on its path were swapped for symlinks since it was opened.
 */
export async function bindMountDescriptor(fdPath: string, target: string): Promise<void> {
  await run('mount', ['--no-canonicalize', '--bind', fdPath, target]);
}

/** Unmounts every mount stacked on `target`; falls back to a lazy unmount when busy. */
export async function unmount(target: string): Promise<void> {
  for (let attempt = 0; attempt < 50 && (await isMountPoint(target)); attempt++) {
    try {
      await run('umount', [target]);
    } catch (err) {
      if (!/busy/i.test((err as Error).message) || attempt >= 4) {
        await run('umount', ['-l', target]);
      } else {
        await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
      }
    }
  }
}
