// `buildyard build --call=targets|outline|check` and `--check` (buildx's --call, BuildKit's
// frontend/subrequests/{targets,outline,lint}). Answered on the client: the CLI already holds the
// Dockerfile and @buildyard/dockerfile is the parser the frontend plans with, so uploading the
// context and asking the builder would return the same answer, only later and over the network.
import { argPairs, checkSettings, lintDockerfile, lintRule, parse, parseRunMount, platformFlag, stageNameAsWritten, varsIn, type Instruction, type ParsedDockerfile, type ParsedStage } from '@buildyard/dockerfile';
import { usageError } from './ClientError.js';
import { dockerfileExcerpt } from './formatBuildError.js';
import { parseBuildArgs } from './parseBuildFlags.js';
import { resolveBuildInput } from './resolveBuildInput.js';

export type CallName = 'build' | 'check' | 'outline' | 'targets';
export interface CallRequest { name: CallName; format: 'text' | 'json' }

/** Parses `--call` (`targets`, `outline,format=json`, ...); `--check` is `--call=check`. */
export function parseCall(value: string | undefined, check: boolean): CallRequest {
  if (check && value !== undefined && value.split(',')[0].trim() !== 'check') {
    throw usageError(`build: --check is --call=check and cannot be combined with --call=${value.slice(0, 100)}; drop one of them`);
  }
  const fields = (value ?? (check ? 'check' : 'build')).split(',').map((f) => f.trim());
  const name = fields[0].toLowerCase();
  if (!['build', 'check', 'outline', 'targets'].includes(name)) {
    throw usageError(`build: --call=${fields[0].slice(0, 100)} is not a subrequest; use build, check, outline or targets`);
  }
  let format: 'text' | 'json' = 'text';
  for (const f of fields.slice(1)) {
    const [k, v] = [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)];
    if (k !== 'format' || (v !== 'text' && v !== 'json')) {
      throw usageError(`build: --call option "${f.slice(0, 100)}" is not supported; use format=text or format=json`);
    }
    format = v;
  }
  return { name: name as CallName, format };
}

export interface CallInput {
  dockerfile: string;
  dockerfileName: string;
  target?: string;
  buildArgs?: Record<string, string>;
}

export interface CallResult { output: string; exitCode: number }

// ---- shared helpers ---------------------------------------------------------------------------

/** The `# NAME description` comment right above `line` (BuildKit's PrevComment + getComment). */
function descriptionAbove(lines: string[], line: number, name: string | undefined): string {
  if (!name) return '';
  for (let n = line - 2; n >= 0; n--) {
    const m = /^\s*#\s?(.*)$/.exec(lines[n]);
    if (!m) break;
    if (m[1].startsWith(`${name} `)) return m[1].slice(name.length + 1).trim();
  }
  return '';
}

// Lint results carry pb.SourceInfo; targets and outline carry the raw bytes ([][]byte, base64 in JSON).
const sourceData = (input: CallInput) => Buffer.from(input.dockerfile).toString('base64');
const lintSources = (input: CallInput) => [{ filename: input.dockerfileName, language: 'Dockerfile', data: sourceData(input) }];

// pb.Location as Go's JSON encoding writes it (zero fields omitted).
const location = (ins: Instruction) => ({
  ranges: [{ start: { line: ins.startLine }, end: { line: ins.endLine } }],
});

/** Go's text/tabwriter with minwidth 0, tabwidth 0, padding `pad`, padchar ' ' (last column unpadded). */
function tabwrite(rows: string[][], pad: number): string {
  const widths: number[] = [];
  for (const r of rows) r.slice(0, -1).forEach((c, i) => { widths[i] = Math.max(widths[i] ?? 0, c.length + pad); });
  // Like Go's, a cell before a tab is padded even when the last cell is empty.
  return rows.map((r) => r.map((c, i) => (i < r.length - 1 ? c.padEnd(widths[i]) : c)).join('') + '\n').join('');
}


// ---- targets ----------------------------------------------------------------------------------

function targets(df: ParsedDockerfile, input: CallInput, lines: string[]) {
  return df.stages.map((s, i) => {
    const name = s.name ?? '';
    const platform = platformFlag(s.from);
    return {
      name,
      description: descriptionAbove(lines, s.from.startLine, name),
      base: s.from.args[0],
      ...(platform ? { platform } : {}),
      location: location(s.from),
      ...(i === df.stages.length - 1 ? { default: true } : {}),
    };
  });
}

function printTargets(list: ReturnType<typeof targets>): string {
  const rows = [['TARGET', 'DESCRIPTION']];
  for (const t of list) {
    const name = t.default ? (t.name ? `${t.name} (default)` : '(default)') : t.name;
    rows.push([name, t.description]);
  }
  return tabwrite(rows, 1);
}

// ---- outline ----------------------------------------------------------------------------------

/** The target stage and every stage it reads (FROM, COPY --from, RUN --mount from=), in file order. */
function reachableStages(df: ParsedDockerfile, target: ParsedStage): ParsedStage[] {
  const byName = (ref: string) => df.stages.find((s) => s.name === ref.toLowerCase()) ?? (/^\d+$/.test(ref) ? df.stages[Number(ref)] : undefined);
  const seen = new Set<ParsedStage>();
  const visit = (s: ParsedStage | undefined) => {
    if (!s || seen.has(s)) return;
    seen.add(s);
    visit(df.stages.slice(0, s.index).reverse().find((p) => p.name === s.from.args[0].toLowerCase()));
    for (const ins of s.instructions) {
      for (const f of ins.flags) {
        if (f.name === 'from' && f.value) visit(byName(f.value));
        if (f.name === 'mount' && f.value) {
          const m = /(?:^|,)from=([^,]+)/.exec(f.value);
          if (m) visit(byName(m[1]));
        }
      }
    }
  };
  visit(target);
  return [...seen].sort((a, b) => a.index - b.index);
}

function outline(df: ParsedDockerfile, input: CallInput, lines: string[]) {
  const target = input.target ? df.stages.find((s) => s.name === input.target!.toLowerCase()) : df.stages[df.stages.length - 1];
  if (!target) throw usageError(`build: target stage "${input.target!.slice(0, 100)}" could not be found in ${input.dockerfileName}; see --call=targets`);
  const stages = reachableStages(df, target);
  const args = new Map<string, { name: string; value?: string; description?: string; location: ReturnType<typeof location> }>();
  const meta = new Map<string, { value?: string; ins: Instruction }>();
  for (const ins of df.metaArgs) for (const p of argPairs(ins)) meta.set(p.key, { value: p.value, ins });
  const add = (name: string, value: string | undefined, ins: Instruction) => {
    if (args.has(name)) return;
    const description = descriptionAbove(lines, ins.startLine, name);
    const given = input.buildArgs?.[name];
    args.set(name, { name, ...(given ?? value) !== undefined ? { value: given ?? value } : {}, ...(description ? { description } : {}), location: location(ins) });
  };
  for (const s of stages) {
    // Meta args read by this stage's FROM (image and --platform).
    for (const v of varsIn(`${s.from.args[0]} ${platformFlag(s.from) ?? ''}`)) {
      const m = meta.get(v);
      if (m) add(v, m.value, m.ins);
    }
    for (const ins of s.instructions) {
      if (ins.keyword !== 'ARG') continue;
      for (const p of argPairs(ins)) {
        const m = meta.get(p.key);
        add(p.key, p.value ?? m?.value, ins);
      }
    }
  }
  const secrets = new Map<string, { name: string; required?: boolean; location: ReturnType<typeof location> }>();
  const ssh = new Map<string, { name: string; required?: boolean; location: ReturnType<typeof location> }>();
  for (const s of stages) {
    for (const ins of s.instructions) {
      for (const f of ins.flags) {
        if (ins.keyword !== 'RUN' || f.name !== 'mount' || !f.value) continue;
        let m;
        try { m = parseRunMount(f.value, (w) => w); } catch { continue; }
        if (m.type === 'secret') {
          const id = m.id ?? (m.target ? m.target.split('/').pop()! : '');
          if (id && !secrets.get(id)?.required) secrets.set(id, { name: id, ...(m.required ? { required: true } : {}), location: location(ins) });
        } else if (m.type === 'ssh') {
          const id = m.id ?? 'default';
          if (!ssh.get(id)?.required) ssh.set(id, { name: id, ...(m.required ? { required: true } : {}), location: location(ins) });
        }
      }
    }
  }
  const name = target.name ?? '';
  const description = descriptionAbove(lines, target.from.startLine, name);
  return {
    ...(name ? { name } : {}), ...(description ? { description } : {}),
    ...(args.size ? { args: [...args.values()] } : {}),
    ...(secrets.size ? { secrets: [...secrets.values()] } : {}),
    ...(ssh.size ? { ssh: [...ssh.values()] } : {}),
  };
}

function printOutline(o: ReturnType<typeof outline>): string {
  let out = '';
  if (o.name || o.description) {
    const rows: string[][] = [['TARGET:', o.name || '(default)']];
    if (o.description) rows.push(['DESCRIPTION:', o.description]);
    out += tabwrite(rows, 1) + '\n';
  }
  if (o.args) out += tabwrite([['BUILD ARG', 'VALUE', 'DESCRIPTION'], ...o.args.map((a) => [a.name, a.value ?? '', a.description ?? ''])], 3) + '\n';
  if (o.secrets) out += tabwrite([['SECRET', 'REQUIRED'], ...o.secrets.map((s) => [s.name, s.required ? 'true' : ''])], 3) + '\n';
  if (o.ssh) out += tabwrite([['SSH', 'REQUIRED'], ...o.ssh.map((s) => [s.name, s.required ? 'true' : ''])], 3) + '\n';
  return out;
}

// ---- check (lint) -----------------------------------------------------------------------------

function check(df: ParsedDockerfile, input: CallInput, format: 'text' | 'json'): CallResult {
  const directive = checkSettings(df, input.buildArgs?.BUILDKIT_DOCKERFILE_CHECK);
  const warnings = directive.all ? [] : lintDockerfile(df).filter((w) => !directive.skip.has(w.rule));
  const text = input.dockerfile;
  const failedRules = [...new Set(warnings.map((w) => w.rule))];
  const error = directive.error && warnings.length > 0 ? `lint violation found for rules: ${failedRules.join(', ')}` : undefined;
  if (format === 'json') {
    const json = {
      warnings: warnings.map((w) => { const r = lintRule(w.rule); return { ruleName: r.name, description: r.description, url: r.url, detail: w.detail, location: location(w.ins) }; }),
      sources: lintSources(input),
      ...(error ? { buildError: { message: error } } : {}),
    };
    return { output: `${JSON.stringify(json, null, 2)}\n`, exitCode: warnings.length > 0 ? 1 : 0 };
  }
  // BuildKit's lint PrintTo: a blank line, the rule and its link, the detail, the source lines.
  let out = '';
  for (const w of warnings) {
    const r = lintRule(w.rule);
    out += `\nWARNING: ${r.name} - ${r.url}\n${w.detail}\n`;
    const excerpt = dockerfileExcerpt(text, input.dockerfileName, w.ins.startLine, w.ins.endLine);
    if (excerpt.length) out += `${excerpt.join('\n')}\n`;
  }
  if (warnings.length > 0) out += '\n';
  if (error) out += `ERROR: ${error}\n`;
  out += warnings.length === 0 ? 'Check complete, no warnings found.\n'
    : `Check complete, ${warnings.length === 1 ? '1 warning has' : `${warnings.length} warnings have`} been found!\n`;
  // buildx: a check that finds warnings fails, so CI can gate on `--check`.
  return { output: out, exitCode: warnings.length > 0 ? 1 : 0 };
}

/** Answers a subrequest from the Dockerfile text (throws DockerfileError on a parse error). */
export function runCallSubrequest(call: CallRequest, input: CallInput): CallResult {
  const df = parse(input.dockerfile, { file: input.dockerfileName });
  const lines = input.dockerfile.split(/\r?\n/);
  if (call.name === 'check') return check(df, input, call.format);
  if (call.name === 'targets') {
    const list = targets(df, input, lines);
    return { output: call.format === 'json' ? `${JSON.stringify({ targets: list, sources: [sourceData(input)] }, null, 2)}\n` : printTargets(list), exitCode: 0 };
  }
  if (call.name === 'outline') {
    const o = outline(df, input, lines);
    return { output: call.format === 'json' ? `${JSON.stringify({ ...o, sources: [sourceData(input)] }, null, 2)}\n` : printOutline(o), exitCode: 0 };
  }
  throw usageError('build: --call=build is a normal build, not a subrequest');
}

export interface RunCallOptions {
  call: CallRequest;
  /** PATH | URL | - as for a build. */
  context: string;
  file?: string;
  target?: string;
  buildArg?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
}

/** `buildyard build --call=...`: reads the Dockerfile as a build would, prints buildx's answer, returns the exit code. */
export async function runCall(o: RunCallOptions): Promise<number> {
  const env = o.env ?? process.env;
  const buildArgs = parseBuildArgs(o.buildArg, env);
  const input = await resolveBuildInput({ context: o.context, file: o.file, cwd: o.cwd ?? process.cwd(), stdin: o.stdin });
  try {
    if (input.contextUrl && o.file !== '-') {
      throw usageError(`build: --call=${o.call.name} reads the Dockerfile on this machine, and a git context's Dockerfile is fetched by the builder; clone the repository and pass its directory, or pass the Dockerfile with -f -`);
    }
    const r = runCallSubrequest(o.call, { dockerfile: input.dockerfile.toString('utf8'), dockerfileName: input.dockerfileName, target: o.target, buildArgs });
    (o.stdout ?? process.stdout).write(r.output);
    return r.exitCode;
  } finally {
    await input.cleanup();
  }
}
