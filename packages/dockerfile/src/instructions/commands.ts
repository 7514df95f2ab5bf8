// BuildKit's instructions/commands.go and parse.go: the flags of FROM, RUN, COPY/ADD and
// HEALTHCHECK as typed fields, read once from the parser's flag words (which bflag.ts already
// checked against each instruction's flag table). Values a Dockerfile may write with variables
// stay unexpanded: the converter (planBuild) expands them in the stage's environment, as
// BuildKit's dispatch does. Checks that need no environment happen here, with BuildKit's words.
import type { HealthConfig } from '@buildyard/graph';
import { excerpt } from '../DockerfileError.js';
import type { Instruction } from '../parse.js';
import { DurationError, parseGoDuration } from './duration.js';

/** A flag value BuildKit refuses; the converter reports it at the instruction's line. */
export class CommandError extends Error {}

function value(ins: Instruction, name: string): string | undefined {
  return ins.flags.find((f) => f.name === name)?.value;
}

/** bflag's BoolFlag: present without a value, or `=true` in any case. */
function bool(ins: Instruction, name: string): boolean | undefined {
  const f = ins.flags.find((x) => x.name === name);
  return f ? f.value === undefined || f.value.toLowerCase() === 'true' : undefined;
}

function all(ins: Instruction, name: string): string[] {
  return ins.flags.filter((f) => f.name === name).map((f) => f.value ?? '');
}

export interface FromCommand {
  /** `--platform`, unexpanded. */
  platform?: string;
}

export function fromCommand(ins: Instruction): FromCommand {
  const f = ins.flags.find((x) => x.name === 'platform');
  return f ? { platform: f.value ?? '' } : {};
}

export interface RunCommand {
  /** Each `--mount` value, unexpanded, in order. */
  mounts: string[];
  network: 'default' | 'none' | 'host';
  security: 'sandbox' | 'insecure';
}

/** Each `--mount` value of a RUN, unexpanded (also read before planning, for stage order). */
export function runMounts(ins: Instruction): string[] {
  return all(ins, 'mount');
}

export function runCommand(ins: Instruction): RunCommand {
  const network = value(ins, 'network') ?? 'default';
  if (network !== 'default' && network !== 'none' && network !== 'host') throw new CommandError(`invalid network mode ${JSON.stringify(network)}`);
  const security = value(ins, 'security') ?? 'sandbox';
  if (security !== 'sandbox' && security !== 'insecure') throw new CommandError(`security ${JSON.stringify(security)} is not valid`);
  return { mounts: runMounts(ins), network, security };
}

/** COPY and ADD (ADD's own flags are absent on COPY: bflag refuses them there). */
export interface CopyCommand {
  /** `--from`, never expanded (a stage name, index or image). */
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  exclude: string[];
  checksum?: string;
  keepGitDir: boolean;
  /** ADD --unpack; undefined when not given (archives from the context unpack, URLs do not). */
  unpack?: boolean;
}

export function copyCommand(ins: Instruction): CopyCommand {
  return {
    from: value(ins, 'from'),
    chown: value(ins, 'chown'),
    chmod: value(ins, 'chmod'),
    link: bool(ins, 'link') ?? false,
    parents: bool(ins, 'parents') ?? false,
    exclude: all(ins, 'exclude'),
    checksum: value(ins, 'checksum'),
    keepGitDir: bool(ins, 'keep-git-dir') ?? false,
    unpack: bool(ins, 'unpack'),
  };
}

const HEALTH_DURATIONS: [string, 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval'][] = [
  ['interval', 'Interval'], ['timeout', 'Timeout'], ['start-period', 'StartPeriod'], ['start-interval', 'StartInterval'],
];

/** HEALTHCHECK's timing flags (parse.go parseOptInterval and --retries): unset ones are left out. */
export function healthcheckTimings(ins: Instruction): Pick<HealthConfig, 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval' | 'Retries'> {
  const out: Pick<HealthConfig, 'Interval' | 'Timeout' | 'StartPeriod' | 'StartInterval' | 'Retries'> = {};
  // Go durations; 0 means unset, else at least 1ms.
  for (const [flag, field] of HEALTH_DURATIONS) {
    const raw = value(ins, flag);
    if (raw === undefined || raw === '') continue;
    let ns: number;
    try {
      ns = parseGoDuration(raw);
    } catch (err) {
      if (err instanceof DurationError) throw new CommandError(err.message);
      throw err;
    }
    if (ns !== 0 && ns < 1e6) throw new CommandError(`Interval ${JSON.stringify(flag)} cannot be less than 1ms`);
    if (ns !== 0) out[field] = ns;
  }
  const retries = value(ins, 'retries');
  if (retries !== undefined && retries !== '') {
    const integer = /^[-+]?\d+$/.test(retries);
    if (!integer || Math.abs(Number(retries)) > 2 ** 31 - 1) throw new CommandError(`strconv.ParseInt: parsing ${JSON.stringify(excerpt(retries))}: ${integer ? 'value out of range' : 'invalid syntax'}`);
    if (Number(retries) < 0) throw new CommandError(`--retries cannot be negative (${Number(retries)})`);
    if (Number(retries) > 0) out.Retries = Number(retries);
  }
  return out;
}
