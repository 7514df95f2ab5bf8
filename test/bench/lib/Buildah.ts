// The peer of the build benchmarks: `buildah bud` with its own storage under a temp dir, chroot
// isolation (no runc daemon, like a CI runner) and layer caching on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from './runCommand.js';

export class Buildah {
  private constructor(readonly dir: string) {}

  static async create(): Promise<Buildah> {
    return new Buildah(await mkdtemp(join(tmpdir(), 'buildyard-bench-buildah-')));
  }

  private global(): string[] {
    return ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'run'), '--storage-driver', 'overlay'];
  }

  async bud(contextDir: string, buildArgs: Record<string, string>, tag = 'bench:latest', platform?: string): Promise<void> {
    await runCommand('buildah', [
      ...this.global(), 'bud', '--isolation', 'chroot', '--tls-verify=false', '--layers', '--quiet',
      ...(platform ? ['--platform', platform] : []),
      ...Object.entries(buildArgs).flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]),
      '-t', tag, '-f', join(contextDir, 'Dockerfile'), contextDir,
    ], { env: { ...process.env, BUILDAH_ISOLATION: 'chroot' } });
  }

  /** Removes every image and container, unmounts the overlay store and deletes the dir. */
  async destroy(): Promise<void> {
    await runCommand('buildah', [...this.global(), 'rm', '--all']).catch(() => undefined);
    await runCommand('buildah', [...this.global(), 'rmi', '--all', '--force']).catch(() => undefined);
    await runCommand('umount', ['-R', '-l', join(this.dir, 'root', 'overlay')]).catch(() => undefined);
    await rm(this.dir, { recursive: true, force: true });
  }
}
