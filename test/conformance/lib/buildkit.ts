// The reference builder: a private buildkitd (socket and state dir of its own) under a restart
// loop, since v0.11.6 crashes on some inputs, and a buildctl build that exports an OCI layout.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { cleanupUnder, referenceToolsDir, supervise, waitUntilReady, type SupervisedProcess } from '@buildyard/testkit';

/** buildkitd from BUILDYARD_BUILDKITD, else the reference tools' folder (../shared/tools); buildctl beside it. */
export function buildkitBinaries(): { buildkitd: string; buildctl: string } {
  const buildkitd = process.env.BUILDYARD_BUILDKITD ?? join(referenceToolsDir(), 'buildkitd');
  const buildctl = process.env.BUILDYARD_BUILDCTL ?? join(dirname(buildkitd), 'buildctl');
  for (const b of [buildkitd, buildctl]) {
    if (!existsSync(b)) throw new Error(`${b} not found: set BUILDYARD_BUILDKITD to a buildkitd binary (buildctl beside it, or BUILDYARD_BUILDCTL)`);
  }
  return { buildkitd, buildctl };
}

export interface BuildctlResult { ok: boolean; stderr: string; crashed: boolean }

export class Buildkitd {
  private service?: SupervisedProcess;
  private constructor(readonly dir: string, private readonly bins: { buildkitd: string; buildctl: string }, private readonly registryHost: string) {}

  static async start(registryHost: string): Promise<Buildkitd> {
    const dir = await mkdtemp(join(tmpdir(), 'buildyard-conformance-bk-'));
    await writeFile(join(dir, 'buildkitd.toml'), `[registry."${registryHost}"]\n  http = true\n  insecure = true\n`);
    const d = new Buildkitd(dir, buildkitBinaries(), registryHost);
    await d.ensureUp();
    return d;
  }

  get addr(): string { return `unix://${join(this.dir, 'buildkitd.sock')}`; }

  private run(args: string[]): Promise<{ code: number; stderr: string }> {
    return new Promise((res) => {
      execFile(this.bins.buildctl, ['--addr', this.addr, ...args], { maxBuffer: 64 << 20 }, (err, _out, stderr) => {
        res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
      });
    });
  }

  /** Starts the daemon if it is not running (first start, or after a crash). */
  async ensureUp(): Promise<void> {
    if (this.service && this.service.child.exitCode === null) return;
    await rm(join(this.dir, 'buildkitd.sock'), { force: true });
    await mkdir(join(this.dir, 'root'), { recursive: true });
    await mkdir(join(this.dir, 'tmp'), { recursive: true });
    this.service = supervise('buildkitd', this.bins.buildkitd, [
      '--addr', this.addr, '--root', join(this.dir, 'root'), '--config', join(this.dir, 'buildkitd.toml'),
      '--oci-worker-net', 'host', '--containerd-worker', 'false', '--oci-worker-snapshotter', 'overlayfs',
      // Its temp dirs under ours: v0.11.6 leaves each RUN --mount=type=ssh's `.buildkit-ssh-sock*`
      // behind (MountSSHSocket's closer removes the socket, not its directory).
    ], { env: { TMPDIR: join(this.dir, 'tmp') } });
    await waitUntilReady(this.service, async () => (await this.run(['debug', 'workers'])).code === 0, 30_000);
  }

  /** Builds `contextDir`, exporting an OCI tarball to `out`; retried once when the daemon crashed. */
  async build(opts: { contextDir: string; dockerfile: string; dockerfileImplicit?: boolean; out: string; args?: Record<string, string>; target?: string; platform: string; secretsDir?: string; secrets?: Record<string, string>; outputAttrs?: Record<string, string> }): Promise<BuildctlResult> {
    const args = ['build', '--frontend', 'dockerfile.v0', '--local', `context=${opts.contextDir}`, '--local', `dockerfile=${dirname(opts.dockerfile)}`,
      '--opt', `platform=${opts.platform}`, '--output', ['type=oci', `dest=${opts.out}`, ...Object.entries(opts.outputAttrs ?? {}).map(([k, v]) => `${k}=${v}`)].join(','), '--progress', 'plain'];
    if (!opts.dockerfileImplicit) args.push('--opt', `filename=${basename(opts.dockerfile)}`);
    for (const [k, v] of Object.entries(opts.args ?? {})) args.push('--opt', `build-arg:${k}=${v}`);
    if (opts.target !== undefined) args.push('--opt', `target=${opts.target}`);
    for (const id of Object.keys(opts.secrets ?? {})) args.push('--secret', `id=${id},src=${join(opts.secretsDir!, id)}`);
    for (let attempt = 0; ; attempt++) {
      await this.ensureUp();
      // Every case syncs its context afresh. Without this, buildctl's builds share one copy of
      // "context" (same shared key), and what BuildKit then builds depends on the case before:
      // directories the sync updated in place end with the sync's time instead of their own.
      await this.run(['prune', '--filter', 'type==source.local']);
      const r = await this.run(args);
      const crashed = this.service!.child.exitCode !== null || /connection refused|Unavailable desc|transport is closing|error reading from server: EOF/.test(r.stderr);
      if (r.code === 0) return { ok: true, stderr: r.stderr, crashed: false };
      if (crashed && attempt === 0) { await this.restart(); continue; }
      return { ok: false, stderr: r.stderr, crashed };
    }
  }

  private async restart(): Promise<void> {
    await this.service?.stop();
    cleanupUnder(this.dir);
  }

  async stop(): Promise<void> {
    await this.service?.stop();
    cleanupUnder(this.dir);
    await rm(this.dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** The error buildctl printed: its last `error:` line (BuildKit puts the cause last). */
export function buildctlError(stderr: string): string {
  const lines = stderr.split('\n');
  const i = lines.map((l) => l.startsWith('error: ')).lastIndexOf(true);
  if (i >= 0) return lines[i];
  return lines.filter((l) => l.trim() !== '').slice(-1)[0] ?? 'buildctl failed without a message';
}
