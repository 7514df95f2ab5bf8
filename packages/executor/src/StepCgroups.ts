// Per-RUN cgroup limits: pids, memory and CPU. The executor makes one cgroup per step itself
// (`/buildyard/<owner>-<step>`), writes the limits there, and has runc put the container in a
// child of it. runc removes its own cgroup the moment the process exits, taking its counters
// with it; the parent stays until the executor has read whether the step hit a limit (an OOM
// kill, a refused fork), so the step can fail with a message naming the limit instead of a bare
// exit code 137. Works on cgroup v2 and on v1 (hybrid hosts mount the controllers as v1).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Limits of one RUN step; 0 or absent means none. */
export interface StepLimits {
  /** Most processes and threads at once (pids.max). */
  pids?: number;
  /** Memory including page cache (memory.max / memory.limit_in_bytes). */
  memoryBytes?: number;
  /** CPU time as a number of CPUs (cpu.max quota / period). */
  cpus?: number;
  /** Bytes the step may add to its root filesystem (its overlay upper dir). */
  diskBytes?: number;
}

export interface StepCgroup {
  /** What runc's linux.cgroupsPath gets. */
  runcPath: string;
  /** Whether the step hit its memory or pids limit: read after the process exited. */
  hits(exitCode: number): { oomKilled: boolean; forkRefused: boolean };
  release(): void;
}

const root = '/sys/fs/cgroup';
const parentName = 'buildyard';
const cpuPeriodUs = 100_000;

export class StepCgroups {
  private readonly v2 = existsSync(join(root, 'cgroup.controllers'));

  constructor(readonly owner: string) {}

  /** undefined when no limit is set: the container then gets runc's default cgroup. */
  create(step: string, limits: StepLimits): StepCgroup | undefined {
    const { pids = 0, memoryBytes = 0, cpus = 0 } = limits;
    if (pids <= 0 && memoryBytes <= 0 && cpus <= 0) return undefined;
    const name = `${this.owner}-${step}`;
    const release = () => this.remove(name);
    try {
      if (this.v2) this.createV2(name, pids, memoryBytes, cpus);
      else this.createV1(name, pids, memoryBytes, cpus);
    } catch (err) {
      release();
      throw new Error(`cannot set the RUN step's limits in ${root} (${(err as Error).message.split('\n')[0]}): the worker needs root and writable cgroups, or set no worker.sandbox limits`);
    }
    return {
      runcPath: `/${parentName}/${name}/step`,
      hits: (exitCode) => this.hits(name, exitCode, pids, memoryBytes),
      release,
    };
  }

  /** Removes the step cgroups a killed predecessor left (of this owner, or another whose
   *  state dir is gone): call after their containers are gone. */
  cleanupStale(owner = this.owner): string[] {
    const found = new Set<string>();
    for (const dir of this.hierarchies()) {
      let names: string[] = [];
      try { names = readdirSync(join(dir, parentName)); } catch { continue; }
      for (const n of names) if (n.startsWith(`${owner}-`)) found.add(n);
    }
    for (const n of found) this.remove(n);
    return [...found];
  }

  private createV2(name: string, pids: number, memoryBytes: number, cpus: number): void {
    const wanted = ['pids', 'memory', 'cpu'].filter((c, i) => [pids, memoryBytes, cpus][i]! > 0);
    const enable = (dir: string) => {
      const available = readFileSync(join(dir, 'cgroup.controllers'), 'utf8').split(/\s+/);
      const missing = wanted.filter((c) => !available.includes(c));
      if (missing.length > 0) throw new Error(`the ${missing.join(', ')} controller is not available in ${dir}`);
      writeFileSync(join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
    };
    enable(root);
    const parent = join(root, parentName);
    mkdirSync(parent, { recursive: true });
    enable(parent);
    const dir = join(parent, name);
    mkdirSync(dir);
    if (pids > 0) writeFileSync(join(dir, 'pids.max'), String(pids));
    if (memoryBytes > 0) {
      writeFileSync(join(dir, 'memory.max'), String(memoryBytes));
      if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), '0');
    }
    if (cpus > 0) writeFileSync(join(dir, 'cpu.max'), `${Math.max(1000, Math.round(cpus * cpuPeriodUs))} ${cpuPeriodUs}`);
    // runc's child needs the controllers delegated from the step's cgroup too.
    writeFileSync(join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
  }

  private createV1(name: string, pids: number, memoryBytes: number, cpus: number): void {
    const make = (controller: string) => {
      const dir = join(root, controller, parentName, name);
      mkdirSync(dir, { recursive: true });
      return dir;
    };
    if (pids > 0) writeFileSync(join(make('pids'), 'pids.max'), String(pids));
    if (memoryBytes > 0) {
      const dir = make('memory');
      writeFileSync(join(dir, 'memory.limit_in_bytes'), String(memoryBytes));
      // With swap accounting, memory+swap gets the same limit: no swapping past it.
      if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) writeFileSync(join(dir, 'memory.memsw.limit_in_bytes'), String(memoryBytes));
    }
    if (cpus > 0) {
      const dir = make('cpu');
      writeFileSync(join(dir, 'cpu.cfs_period_us'), String(cpuPeriodUs));
      writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(cpus * cpuPeriodUs))));
    }
  }

  /**
   * The event counters are exact where they are hierarchical (v2's memory.events). Kernels
   * count v1's oom_kill and pids' "max" events in the cgroup of the task (runc's child, gone
   * with the process), so the step's own peaks decide there: its pids peak reached pids.max,
   * or it was SIGKILLed (exit 137) with its memory peak at the limit.
   */
  private hits(name: string, exitCode: number, pids: number, memoryBytes: number): { oomKilled: boolean; forkRefused: boolean } {
    const read = (file: string) => {
      try { return readFileSync(file, 'utf8'); } catch { return ''; }
    };
    const counter = (file: string, key: string) => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(read(file))?.[1] ?? 0);
    const number = (file: string) => Number(read(file).trim() || 0);
    const pidsDir = this.v2 ? join(root, parentName, name) : join(root, 'pids', parentName, name);
    const memDir = this.v2 ? join(root, parentName, name) : join(root, 'memory', parentName, name);
    const forkRefused = pids > 0 && (counter(join(pidsDir, 'pids.events'), 'max') > 0 || number(join(pidsDir, 'pids.peak')) >= pids);
    const peak = this.v2 ? number(join(memDir, 'memory.peak')) : Math.max(number(join(memDir, 'memory.max_usage_in_bytes')), number(join(memDir, 'memory.memsw.max_usage_in_bytes')));
    const oomKilled = memoryBytes > 0 && ((this.v2 ? counter(join(memDir, 'memory.events'), 'oom_kill') : counter(join(memDir, 'memory.oom_control'), 'oom_kill')) > 0
      || (exitCode === 137 && peak >= memoryBytes - 64 * 1024));
    return { oomKilled, forkRefused };
  }

  /** runc creates the path in every v1 hierarchy; each keeps our directory after runc's child
   *  is gone, so remove it (children first) wherever it is. */
  private remove(name: string): void {
    for (const dir of this.hierarchies()) {
      const step = join(dir, parentName, name);
      for (const path of [join(step, 'step'), step]) {
        try { rmdirSync(path); } catch { /* absent, or runc's child still there: cleanupStale retries */ }
      }
    }
  }

  private hierarchies(): string[] {
    if (this.v2) return [root];
    try {
      return readdirSync(root).map((n) => join(root, n)).filter((d) => existsSync(join(d, 'cgroup.procs')));
    } catch {
      return [];
    }
  }
}
