import { spawn, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { stepRlimits } from './rlimits.js';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildRuntimeSpec, defaultCapabilities } from './buildRuntimeSpec.js';
import type { RuntimeSeccomp } from './runtimeSpec.js';
import { defaultSeccompProfilePath, loadSeccompProfile, runtimeSeccomp } from './seccompProfile.js';
import { canRunPlatform, detectPlatforms } from './detectPlatforms.js';
import { ensureWorkdir } from './ensureWorkdir.js';
import { DiskWatch, upperDirOf } from './DiskWatch.js';
import { removeTree } from '@buildyard/snapshot';
import { AbortError, ExecError, ExecLimitError, ExecTimeoutError } from './errors.js';
import { StepCgroups, type StepCgroup, type StepLimits } from './StepCgroups.js';
import { EgressNetworks, reclaimNetworks, type EgressPolicy, type StepNetwork } from './EgressNetworks.js';
import { EgressRules } from './egressRules.js';
import { forgetOwner, orphanOwners, registerOwner } from './owners.js';
import { hostsFile, nameservers, onlyLoopbackNameservers, resolvConf, type DnsConfig } from './etcFiles.js';
import { checkMountLayout } from './mountLayout.js';
import { createMountStubs, isDirectory, removeMountStubs, type CreatedStub, type MountStub } from './mountStubs.js';
import { resolveUser } from './resolveUser.js';
import type { RunOptions, RunResult } from './types.js';
import type { Executor } from './Executor.js';

export interface RuncExecutorOptions {
  /** Directory for bundles (config.json and the generated /etc files). */
  stateDir: string;
  /** runc's --root; defaults to `<stateDir>/runc` so stale containers are ours alone. */
  runcRoot?: string;
  runcBinary?: string;
  /** Every container id starts with this, so cleanupStale() knows what it may delete. */
  idPrefix?: string;
  /** Host resolv.conf to base the container's on. */
  hostResolvConf?: string;
  /** The worker's [dns] settings; when they name nameservers, they replace the host's. */
  dns?: DnsConfig;
  /** Egress of network=default steps (see EgressNetworks); `false` or `enabled: false`: such
   *  steps get only loopback (the lists still decide what the worker fetches for builds, see
   *  egressRules). Defaults to the 10.89.0.0/16 pool when running as root. */
  egress?: (Partial<EgressPolicy> & { enabled?: boolean }) | false;
  /** Docker-format seccomp profile for sandboxed steps (default: Docker's own, installed by
   *  infra/dev/setup.sh); `false` runs every step unconfined. */
  seccompProfile?: string | false;
  /** Limits of every step (pids, memory, CPU, disk); a step's meta.limits override them. */
  limits?: StepLimits;
  /** Give containers their own cgroup namespace; defaults to whether the kernel has them. */
  cgroupNamespace?: boolean;
  defaultHostname?: string;
}

const stderrTailLines = 10;
const runcCommandTimeoutMs = 30_000;

export class RuncExecutor implements Executor {
  readonly stateDir: string;
  readonly runcRoot: string;
  readonly runcBinary: string;
  readonly idPrefix: string;
  private readonly hostResolvConf: string;
  private readonly cgroupNamespace: boolean;
  private readonly defaultHostname: string;
  private readonly dns?: DnsConfig;
  private readonly seccompProfile: string | false;
  private sandboxSeccomp?: RuntimeSeccomp;
  private readonly limits: StepLimits;
  private readonly cgroups: StepCgroups;
  private readonly owner: string;
  /** Steps between their registration and their end. */
  private running = 0;
  private registered = false;
  readonly egress?: EgressNetworks;
  /** What builds may reach: RUN steps through `egress`, and the worker's own fetches for them. */
  readonly egressRules: EgressRules;

  constructor(options: RuncExecutorOptions) {
    this.stateDir = resolve(options.stateDir);
    this.runcRoot = resolve(options.runcRoot ?? join(this.stateDir, 'runc'));
    this.runcBinary = options.runcBinary ?? 'runc';
    this.idPrefix = options.idPrefix ?? 'buildyard-';
    this.hostResolvConf = options.hostResolvConf ?? '/etc/resolv.conf';
    this.cgroupNamespace = options.cgroupNamespace ?? existsSync('/proc/self/ns/cgroup');
    this.defaultHostname = options.defaultHostname ?? 'buildkitsandbox'; // BuildKit's name: build scripts may test for it
    this.dns = options.dns;
    this.seccompProfile = options.seccompProfile ?? defaultSeccompProfilePath;
    this.limits = options.limits ?? {};
    const egress = options.egress ?? (process.getuid?.() === 0 ? {} : false);
    // Names of this executor's namespaces, tables and cgroups: unique per state dir, short for nft.
    const owner = 'by' + createHash('sha256').update(this.stateDir).digest('hex').slice(0, 8);
    this.owner = owner;
    this.cgroups = new StepCgroups(owner);
    const lists = { protect: (egress || {}).protect ?? [], deny: (egress || {}).deny ?? [], allow: (egress || {}).allow ?? [], denyPrivate: (egress || {}).denyPrivate ?? false };
    if (egress !== false && egress.enabled !== false) {
      this.egress = new EgressNetworks(owner, { pool: egress.pool ?? '10.89.0.0/16', ...lists });
    }
    this.egressRules = this.egress?.rules ?? new EgressRules(lists);
  }

  private get bundlesDir(): string {
    return join(this.stateDir, 'bundles');
  }

  async run(options: RunOptions): Promise<RunResult> {
    const { meta, signal } = options;
    if (signal?.aborted) throw new AbortError('the run was aborted before it started', { cause: signal.reason });
    if (meta.platform && !canRunPlatform(meta.platform)) {
      const p = detectPlatforms();
      throw new Error(`platform ${meta.platform} cannot run on this host (native: ${p.native.join(', ')}; emulated: ${p.emulated.join(', ') || 'none'}): register a QEMU binfmt_misc handler with the F flag (qemu-user-static) or use a native worker`);
    }
    const suffix = options.id ?? randomBytes(12).toString('hex');
    if (!/^[A-Za-z0-9_.+-]+$/.test(suffix)) throw new Error(`invalid container id ${JSON.stringify(suffix)}: use letters, digits, '_', '.', '+' or '-'`);
    const containerId = this.idPrefix + suffix;
    const rootfs = resolve(options.rootfs);
    if (!isDirectory(rootfs)) throw new Error(`rootfs ${rootfs} is not a directory: mount the snapshot before running`);

    const started = performance.now();
    const bundle = join(this.bundlesDir, containerId);
    await mkdir(this.bundlesDir, { recursive: true, mode: 0o700 });
    await mkdir(this.runcRoot, { recursive: true, mode: 0o700 });
    // Not recursive: a second run with the same id must fail instead of sharing a bundle.
    await mkdir(bundle, { mode: 0o700 });

    if (!this.registered) {
      registerOwner(this.owner, this.stateDir);
      this.registered = true;
    }
    this.running++;
    let stubs: CreatedStub[] = [];
    let containerMayExist = false;
    let network: StepNetwork | undefined;
    let cgroup: StepCgroup | undefined;
    let disk: DiskWatch | undefined;
    const limits: StepLimits = { ...this.limits, ...Object.fromEntries(Object.entries(meta.limits ?? {}).filter(([, v]) => v !== undefined)) };
    try {
      // BuildKit reports a USER it cannot resolve as the process failing: process "..." did not complete successfully: unable to find user ...
      const user = await resolveUser(rootfs, meta.user).catch((err: Error) => {
        throw new ExecError(`process ${JSON.stringify(meta.args.join(' '))} did not complete successfully: ${err.message}`, -1, meta.args, []);
      });
      const hostname = meta.hostname || this.defaultHostname;
      const etc = { hosts: join(bundle, 'hosts'), resolvConf: join(bundle, 'resolv.conf'), hostname: join(bundle, 'hostname') };
      await writeFile(etc.hosts, hostsFile(hostname, meta.extraHosts), { mode: 0o644 });
      const resolv = resolvConf(this.hostResolv(meta.network), meta.network, this.dns);
      await writeFile(etc.resolvConf, resolv, { mode: 0o644 });
      await writeFile(etc.hostname, hostname + '\n', { mode: 0o644 });

      const cwd = posix.resolve('/', meta.cwd || '/');
      ensureWorkdir(rootfs, cwd, user.uid, user.gid);
      // runc's own mount points stay, as BuildKit leaves them (its stub cleaner knows only the
      // step's mounts): a RUN on a rootfs without /proc, /dev or /sys adds those directories.
      const runtimeDirs = new Set(['proc', 'dev', 'sys'].map((d) => join(rootfs, d)));
      checkMountLayout(rootfs, options.mounts);
      stubs = createMountStubs(rootfs, this.mountStubs(options)).filter((s) => !runtimeDirs.has(s.path));
      if (meta.network === 'default' && this.egress) {
        network = await this.egress.create({
          nameservers: nameservers(resolv), deny: meta.egress?.deny, allow: meta.egress?.allow,
          tenant: meta.tenant, mayReconfigure: meta.security === 'insecure',
        });
      }

      const spec = buildRuntimeSpec({
        rootfs, args: meta.args, env: meta.env, cwd, user, hostname, network: meta.network, netnsPath: network?.netnsPath,
        readonlyRootfs: meta.readonlyRootfs ?? false, cgroupNamespace: this.cgroupNamespace,
        etcMounts: etc, mounts: options.mounts, rlimits: stepRlimits(meta.ulimits),
        security: meta.security, seccomp: meta.security === 'insecure' ? undefined : this.seccomp(),
      });
      cgroup = this.cgroups.create(suffix, limits);
      if (cgroup) spec.linux.cgroupsPath = cgroup.runcPath;
      await writeFile(join(bundle, 'config.json'), JSON.stringify(spec, null, 2));

      containerMayExist = true;
      const diskBytes = limits.diskBytes ?? 0;
      let diskReady: Promise<void> | undefined;
      const outcome = await this.runContainer(containerId, bundle, options, diskBytes > 0 ? (kill) => {
        const upper = upperDirOf(rootfs);
        diskReady = DiskWatch.start(upper ?? rootfs, diskBytes, upper === undefined, kill).then((w) => { disk = w; });
      } : undefined);
      // `runc run` deletes the container (its state dir under the runc root) when the process
      // exits: then there is nothing to kill or delete (two runc processes saved per step).
      containerMayExist = existsSync(join(this.runcRoot, containerId));
      await diskReady;
      disk?.stop();
      const durationMs = Math.round(performance.now() - started);
      if (outcome.stopped === 'abort') throw new AbortError(`the run of process "${meta.args.join(' ')}" was aborted`, { cause: signal?.reason });
      if (outcome.stopped === 'timeout') throw new ExecTimeoutError(meta.timeoutMs ?? 0, meta.args, outcome.stderrTail);
      if (outcome.runcError) throw new ExecError(`process ${JSON.stringify(meta.args.join(' '))} could not be started: ${outcome.runcError}`, outcome.exitCode, meta.args, outcome.stderrTail);
      // The measure after exit decides; the watch only stops a runaway writer early.
      const written = disk ? await disk.used() : 0;
      if (outcome.stopped === 'limit' || (disk && written > diskBytes)) {
        throw new ExecLimitError(`process "${meta.args.join(' ')}" exceeded its disk limit: it wrote ${formatBytes(written)} to the root filesystem, over ${formatBytes(diskBytes)} (worker.sandbox.diskBytes); write less or raise the limit`, 'disk', outcome.exitCode, meta.args, outcome.stderrTail);
      }
      const hits = outcome.exitCode !== 0 ? cgroup?.hits(outcome.exitCode) : undefined;
      if (hits?.oomKilled) {
        throw new ExecLimitError(`process "${meta.args.join(' ')}" ran out of memory: killed at its ${formatBytes(limits.memoryBytes ?? 0)} limit (worker.sandbox.memoryBytes); use less memory or raise the limit`, 'memory', outcome.exitCode, meta.args, outcome.stderrTail);
      }
      if (hits?.forkRefused) {
        throw new ExecLimitError(`process "${meta.args.join(' ')}" hit its limit of ${limits.pids} processes (worker.sandbox.pids) and failed with exit code ${outcome.exitCode}; start fewer processes or raise the limit`, 'pids', outcome.exitCode, meta.args, outcome.stderrTail);
      }
      if (outcome.exitCode !== 0) {
        throw new ExecError(`process ${JSON.stringify(meta.args.join(' '))} did not complete successfully: exit code: ${outcome.exitCode}`, outcome.exitCode, meta.args, outcome.stderrTail);
      }
      return { exitCode: 0, durationMs };
    } finally {
      disk?.stop();
      if (containerMayExist) await this.destroy(containerId);
      cgroup?.release();
      // Nothing runs in the namespace any more, and nothing of the step's result depends on
      // what becomes of it (kept for the tenant's next step, or torn down by two `ip`/`nft`
      // processes after run() returns; settled() waits for that).
      void network?.release();
      removeMountStubs(stubs);
      this.running--;
      await removeTree(bundle);
    }
  }

  /**
   * Resolves once the networks of steps that have returned are torn down, the spare made for the
   * next step included. With no step running, nothing of this executor is left on the host then:
   * its record (which lets another worker reclaim what a killed one leaves) goes too, and the next
   * run writes it again.
   */
  async settled(): Promise<void> {
    await this.egress?.settled();
    if (this.registered && this.running === 0) {
      forgetOwner(this.owner);
      this.registered = false;
    }
  }

  /** Deletes every container with our prefix in the runc root and every leftover bundle.
   *  Call on startup, before any run: it does not spare containers of a live executor. */
  async cleanupStale(): Promise<{ containers: string[]; bundles: string[]; networks: string[] }> {
    const containers: string[] = [];
    if (existsSync(this.runcRoot)) {
      const listed = await this.runc(['list', '--format', 'json']);
      if (listed.code !== 0) throw new Error(`runc list failed in ${this.runcRoot}: ${listed.stderr.trim()}: check runc and the runc root`);
      const entries = (JSON.parse(listed.stdout.trim() || 'null') ?? []) as { id: string }[];
      for (const { id } of entries) {
        if (!id.startsWith(this.idPrefix)) continue;
        await this.destroy(id);
        containers.push(id);
      }
    }
    let bundles: string[] = [];
    try {
      bundles = (await readdir(this.bundlesDir)).filter((n) => n.startsWith(this.idPrefix));
    } catch {
      // No bundles dir yet: nothing ran here.
    }
    for (const b of bundles) await removeTree(join(this.bundlesDir, b));
    // After the containers: a namespace or cgroup lives on while a process is in it.
    const networks = this.egress ? (await this.egress.cleanupStale()).namespaces : [];
    this.cgroups.cleanupStale();
    // Executors whose state dir is gone never start again to reclaim theirs; their containers
    // went with it (cleanupUnder, or the dir's removal after a teardown).
    for (const orphan of orphanOwners()) {
      if (orphan === this.owner) continue;
      await reclaimNetworks(orphan);
      this.cgroups.cleanupStale(orphan);
      forgetOwner(orphan);
    }
    return { containers, bundles, networks };
  }

  /** Docker's profile for Docker's capabilities: the same filter for every sandboxed step. */
  private seccomp(): RuntimeSeccomp | undefined {
    if (this.seccompProfile === false) return undefined;
    this.sandboxSeccomp ??= runtimeSeccomp(loadSeccompProfile(this.seccompProfile), defaultCapabilities);
    return this.sandboxSeccomp;
  }

  /** systemd-resolved's stub (127.0.0.53) is useless in the step's namespace: use its upstream
   *  servers, as BuildKit does. */
  private hostResolv(network: RunOptions['meta']['network']): string {
    const text = readOptional(this.hostResolvConf);
    if (network !== 'host' && onlyLoopbackNameservers(text)) {
      const upstream = readOptional('/run/systemd/resolve/resolv.conf');
      if (upstream !== '') return upstream;
    }
    return text;
  }

  private mountStubs(options: RunOptions): MountStub[] {
    const stubs: MountStub[] = [
      { target: '/proc', kind: 'dir' }, { target: '/dev', kind: 'dir' }, { target: '/sys', kind: 'dir' },
      { target: '/etc/hosts', kind: 'file' }, { target: '/etc/resolv.conf', kind: 'file' }, { target: '/etc/hostname', kind: 'file' },
    ];
    const targets = options.mounts.map((m) => posix.resolve('/', m.target));
    for (const [i, m] of options.mounts.entries()) {
      const target = targets[i] as string;
      // A target inside another user mount lives in that mount's source, not in the rootfs.
      if (targets.some((t, j) => j !== i && target.startsWith(t === '/' ? '/' : t + '/'))) continue;
      if (target.startsWith('/proc/') || target.startsWith('/dev/') || target.startsWith('/sys/')) continue;
      stubs.push({ target, kind: m.type === 'bind' && !isDirectory(m.source) ? 'file' : 'dir' });
    }
    return stubs;
  }

  /** `watch` starts once the container runs and may kill it at a limit (stopped: 'limit'). */
  private runContainer(containerId: string, bundle: string, options: RunOptions, watch?: (kill: () => void) => void): Promise<{ exitCode: number; stopped?: 'timeout' | 'abort' | 'limit'; stderrTail: string[]; runcError?: string }> {
    const { meta, signal } = options;
    // An abort during the set-up before this point fired no listener: check it before starting.
    if (signal?.aborted) return Promise.resolve({ exitCode: -1, stopped: 'abort', stderrTail: [] });
    const logFile = join(bundle, 'runc.log');
    const child = spawn(this.runcBinary, ['--root', this.runcRoot, '--log', logFile, '--log-format', 'json', 'run', '--bundle', bundle, containerId], {
      stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const tail = new LineTail(stderrTailLines);
    const stdout = child.stdout as NodeJS.ReadableStream;
    const stderr = child.stderr as NodeJS.ReadableStream;
    if (options.stdin && child.stdin) {
      child.stdin.on('error', () => { /* the process may exit without reading stdin */ });
      options.stdin.pipe(child.stdin);
    }
    if (options.stdout) stdout.pipe(options.stdout, { end: false });
    else stdout.resume();
    stderr.on('data', (chunk: Buffer) => tail.push(chunk));
    if (options.stderr) stderr.pipe(options.stderr, { end: false });

    let stopped: 'timeout' | 'abort' | 'limit' | undefined;
    let exited = false;
    const stop = (reason: 'timeout' | 'abort' | 'limit') => {
      if (stopped || exited) return;
      stopped = reason;
      void this.killUntilExited(containerId, () => exited, () => child.kill('SIGKILL'), () => { child.stdout?.destroy(); child.stderr?.destroy(); });
    };
    const timer = meta.timeoutMs !== undefined && meta.timeoutMs > 0 ? setTimeout(() => stop('timeout'), meta.timeoutMs) : undefined;
    const onAbort = () => stop('abort');
    signal?.addEventListener('abort', onAbort, { once: true });
    watch?.(() => stop('limit'));

    return new Promise((resolvePromise, reject) => {
      child.on('error', (err) => {
        exited = true;
        cleanup();
        reject(new Error(`cannot start ${this.runcBinary}: ${err.message}: install runc or set runcBinary`));
      });
      child.on('close', (code, sig) => {
        exited = true;
        cleanup();
        const exitCode = code ?? (sig ? 128 + signalNumber(sig) : -1);
        resolvePromise({ exitCode, stopped, stderrTail: tail.lines(), runcError: stopped ? undefined : runcFailure(logFile) });
      });
    });

    function cleanup() {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (options.stdin && child.stdin) options.stdin.unpipe(child.stdin);
    }
  }

  // `runc kill` fails while the container is still being created, so retry until runc run
  // returns. If runc itself hangs, kill it and the container with `runc delete --force`: the
  // container's processes hold runc's stdout/stderr, and run() waits for those to close. Should
  // anything still hold them after that, stop reading them, so run() returns in any case.
  private async killUntilExited(containerId: string, exited: () => boolean, killRunc: () => void, stopReading: () => void): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!exited()) {
      await this.runc(['kill', containerId, 'KILL']);
      if (exited()) return;
      if (Date.now() > deadline) {
        killRunc();
        await this.runc(['delete', '--force', containerId]);
        for (let attempt = 0; attempt < 50 && !exited(); attempt++) await new Promise((r) => setTimeout(r, 100));
        if (!exited()) stopReading();
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  private async destroy(containerId: string): Promise<void> {
    await this.runc(['kill', containerId, 'KILL']);
    const res = await this.runc(['delete', '--force', containerId]);
    if (res.code !== 0 && !/does not exist|not exist/.test(res.stderr)) {
      throw new Error(`cannot delete container ${containerId}: ${res.stderr.trim()}: run "runc --root ${this.runcRoot} delete --force ${containerId}"`);
    }
  }

  private runc(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolvePromise) => {
      execFile(this.runcBinary, ['--root', this.runcRoot, ...args], { timeout: runcCommandTimeoutMs }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
        resolvePromise({ code, stdout, stderr });
      });
    });
  }
}

/** Keeps the last N lines of a byte stream. */
class LineTail {
  private buf = '';
  private done: string[] = [];
  constructor(private readonly max: number) {}
  push(chunk: Buffer): void {
    this.buf += chunk.toString('utf8');
    const parts = this.buf.split('\n');
    this.buf = (parts.pop() ?? '').slice(-4096);
    this.done.push(...parts.map((l) => l.slice(0, 4096)));
    if (this.done.length > this.max) this.done = this.done.slice(-this.max);
  }
  lines(): string[] {
    const all = this.buf === '' ? this.done : [...this.done, this.buf];
    return all.slice(-this.max);
  }
}

// runc's own failures (bad exec, mount errors) go to its JSON log, not the process's stderr.
function runcFailure(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as { level?: string; msg?: string };
      if (entry.level === 'error' && entry.msg) last = entry.msg;
    } catch {
      // Not JSON: ignore.
    }
  }
  return last?.replace(/^runc run failed: /, '');
}

function formatBytes(n: number): string {
  for (const [unit, size] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  }
  return `${n} B`;
}

function readOptional(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function signalNumber(sig: NodeJS.Signals): number {
  return osConstants.signals[sig] ?? 0;
}
