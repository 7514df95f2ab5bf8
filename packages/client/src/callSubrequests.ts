// `buildyard build --call=targets|outline|check` and `--check` (buildx's --call, BuildKit's
// frontend/subrequests/{targets,outline,lint}). Answered on the client: the CLI already holds the
// Dockerfile and @buildyard/dockerfile is the parser the frontend plans with, so uploading the
// context and asking the builder would return the same answer, only later and over the network.
import { parse, parseRunMount, suggest, type Instruction, type ParsedDockerfile, type ParsedStage } from '@buildyard/dockerfile';
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

/** The instruction keyword as written (the parser upper-cases `keyword`). */
function writtenKeyword(ins: Instruction): string {
  return /^\s*(\S+)/.exec(ins.text)?.[1] ?? ins.keyword;
}

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

/** The name as written (`AS Release`); BuildKit's targets and outline show it lower-cased (`s.name`). */
const stageName = (s: ParsedStage): string | undefined => (s.from.args.length === 3 ? s.from.args[2] : undefined);
const platformFlag = (ins: Instruction): string | undefined => ins.flags.find((f) => f.name === 'platform')?.value;

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

function argPairs(ins: Instruction): { key: string; value?: string }[] {
  return ins.args.map((a) => {
    const eq = a.indexOf('=');
    return eq < 0 ? { key: a } : { key: a.slice(0, eq), value: a.slice(eq + 1).replace(/^"(.*)"$/, '$1') };
  });
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

interface Rule { name: string; description: string; url?: string }
const RULES = {
  StageNameCasing: 'Stage names should be lowercase',
  FromAsCasing: "The 'as' keyword should match the case of the 'from' keyword",
  NoEmptyContinuation: 'Empty continuation lines will become errors in a future release',
  ConsistentInstructionCasing: 'All commands within the Dockerfile should use the same casing (either upper or lower)',
  DuplicateStageName: 'Stage names should be unique',
  ReservedStageName: 'Reserved words should not be used as stage names',
  JSONArgsRecommended: 'JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals',
  MaintainerDeprecated: 'The MAINTAINER instruction is deprecated, use a label instead to define an image author',
  UndefinedArgInFrom: 'FROM command must use declared ARGs',
  WorkdirRelativePath: 'Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes',
  MultipleInstructionsDisallowed: 'Multiple instructions of the same type should not be used in the same stage',
  LegacyKeyValueFormat: 'Legacy key/value format with whitespace separator should not be used',
  SecretsUsedInArgOrEnv: 'Sensitive data should not be used in the ARG or ENV commands',
  RedundantTargetPlatform: 'Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
} as const;
type RuleName = keyof typeof RULES;

function ruleOf(name: RuleName): Rule {
  // docs.docker.com/go/dockerfile/rule/<kebab-case>/ is where BuildKit's rules link.
  const kebab = name.replace(/JSON/g, 'Json').replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
  return { name, description: RULES[name], url: `https://docs.docker.com/go/dockerfile/rule/${kebab}/` };
}

export interface LintWarning { rule: RuleName; detail: string; ins: Instruction }

// Args BuildKit defines for every FROM (the automatic platform args).
const BUILTIN_ARGS = new Set(['BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT', 'TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'TARGETSTAGE']);

function varsIn(word: string): string[] {
  return [...word.matchAll(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))/g)].map((m) => m[1] ?? m[2]);
}

// BuildKit's SecretsUsedInArgOrEnv token lists: a key with one of these words between `_` or the ends.
const SECRET_DENY = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public)(?:_|$)/i;

/** Every warning BuildKit's linter would report that can be found from the text alone. */
export function lintDockerfile(df: ParsedDockerfile): LintWarning[] {
  const out: LintWarning[] = [];
  const warn = (rule: RuleName, detail: string, ins: Instruction) => { out.push({ rule, detail, ins }); };
  const byLine = new Map(df.instructions.map((i) => [i.startLine, i]));
  // The parser's own warnings (one implementation): empty continuations and duplicate stage names.
  for (const w of df.warnings) {
    const ins = byLine.get(w.line) ?? df.instructions.find((i) => i.startLine <= w.line && w.line <= i.endLine) ?? df.instructions[0];
    if (w.message.startsWith('empty continuation line')) warn('NoEmptyContinuation', 'Empty continuation line', ins);
    else if (w.message.startsWith('Duplicate stage name')) warn('DuplicateStageName', w.message, ins);
  }
  // ConsistentInstructionCasing: the majority casing of the file wins.
  let upper = 0;
  let lower = 0;
  for (const ins of df.instructions) {
    const k = writtenKeyword(ins);
    if (k === k.toUpperCase()) upper++;
    else if (k === k.toLowerCase()) lower++;
  }
  const majorityLower = lower > upper;
  for (const ins of df.instructions) {
    const k = writtenKeyword(ins);
    if ((majorityLower ? k.toLowerCase() : k.toUpperCase()) !== k) {
      warn('ConsistentInstructionCasing', `Command '${k}' should match the case of the command majority (${majorityLower ? 'lowercase' : 'uppercase'})`, ins);
    }
  }
  const metaNames = new Set(df.metaArgs.flatMap((i) => argPairs(i).map((p) => p.key)));
  for (const ins of df.instructions) {
    if (ins.keyword === 'ARG' || ins.keyword === 'ENV') {
      const keys = ins.keyword === 'ARG' ? argPairs(ins).map((p) => p.key) : (ins.pairs ?? []).map((p) => p.key);
      for (const key of keys) {
        if (SECRET_DENY.test(key) && !SECRET_ALLOW.test(key)) warn('SecretsUsedInArgOrEnv', `Do not use ARG or ENV instructions for sensitive data (${ins.keyword} ${JSON.stringify(key)})`, ins);
      }
    }
    if ((ins.keyword === 'ENV' || ins.keyword === 'LABEL') && ins.rest && !/^[^\s=]+=/.test(ins.rest)) {
      warn('LegacyKeyValueFormat', `"${ins.keyword} key=value" should be used instead of legacy "${ins.keyword} key value" format`, ins);
    }
    if (ins.keyword === 'MAINTAINER') warn('MaintainerDeprecated', 'Maintainer instruction is deprecated in favor of using label', ins);
  }
  for (const s of df.stages) {
    const from = s.from;
    const kw = writtenKeyword(from);
    const name = stageName(s);
    if (name !== undefined) {
      const as = from.args[1];
      if (name !== name.toLowerCase()) warn('StageNameCasing', `Stage name '${name}' should be lowercase`, from);
      if ((kw === kw.toUpperCase() && as !== as.toUpperCase()) || (kw === kw.toLowerCase() && as !== as.toLowerCase())) {
        warn('FromAsCasing', `'${as}' and '${kw}' keywords' casing do not match`, from);
      }
      if (['scratch', 'context'].includes(name.toLowerCase())) warn('ReservedStageName', `Stage name should not use the same name as reserved stage ${JSON.stringify(name)}`, from);
    }
    const platform = platformFlag(from);
    for (const v of varsIn(`${from.args[0]} ${platform ?? ''}`)) {
      if (metaNames.has(v) || BUILTIN_ARGS.has(v)) continue;
      const hint = suggest(v, [...metaNames, ...BUILTIN_ARGS], true);
      warn('UndefinedArgInFrom', `FROM argument '${v}' is not declared${hint ? ` (did you mean ${hint}?)` : ''}`, from);
    }
    if (platform === '$TARGETPLATFORM' || platform === '${TARGETPLATFORM}') {
      warn('RedundantTargetPlatform', `Setting platform to predefined ${platform} in FROM is redundant as this is the default behavior`, from);
    }
    let workdirSet = false;
    // BuildKit leaves shell-form CMD/ENTRYPOINT alone once SHELL chose the shell on purpose.
    let shellSet = false;
    const seen = new Map<string, Instruction[]>();
    for (const ins of s.instructions) {
      if (ins.keyword === 'WORKDIR') {
        const dir = ins.args[0] ?? '';
        if (!workdirSet && !dir.startsWith('/') && !dir.startsWith('$')) {
          warn('WorkdirRelativePath', `Relative workdir ${JSON.stringify(dir)} can have unexpected results if the base image changes`, ins);
        }
        workdirSet = true;
      }
      if (ins.keyword === 'SHELL') shellSet = true;
      if ((ins.keyword === 'CMD' || ins.keyword === 'ENTRYPOINT') && !ins.json && !shellSet && ins.heredocs.length === 0) {
        warn('JSONArgsRecommended', `JSON arguments recommended for ${ins.keyword} to prevent unintended behavior related to OS signals`, ins);
      }
      if (['CMD', 'ENTRYPOINT', 'HEALTHCHECK'].includes(ins.keyword)) seen.set(ins.keyword, [...(seen.get(ins.keyword) ?? []), ins]);
    }
    for (const [kw2, list] of seen) {
      for (const ins of list.slice(0, -1)) {
        warn('MultipleInstructionsDisallowed', `Multiple ${kw2} instructions should not be used in the same stage because only the last one will be used`, ins);
      }
    }
  }
  return out.sort((a, b) => a.ins.startLine - b.ins.startLine);
}

/** `# check=skip=A,B;error=true` (BuildKit's check directive; also read from BUILDKIT_DOCKERFILE_CHECK). */
export function parseCheckDirective(value: string | undefined): { skip: Set<string>; all: boolean; error: boolean } {
  const skip = new Set<string>();
  let error = false;
  for (const part of (value ?? '').split(';')) {
    const [k, v = ''] = part.split('=', 2).length === 2 ? [part.slice(0, part.indexOf('=')).trim(), part.slice(part.indexOf('=') + 1).trim()] : [part.trim()];
    if (k === 'skip') for (const r of v.split(',')) if (r.trim()) skip.add(r.trim());
    if (k === 'error') error = v === 'true';
  }
  return { skip, all: skip.has('all'), error };
}

function check(df: ParsedDockerfile, input: CallInput, format: 'text' | 'json'): CallResult {
  const directive = parseCheckDirective(df.directives.find((d) => d.name === 'check')?.value ?? input.buildArgs?.BUILDKIT_DOCKERFILE_CHECK);
  const warnings = directive.all ? [] : lintDockerfile(df).filter((w) => !directive.skip.has(w.rule));
  const text = input.dockerfile;
  const failedRules = [...new Set(warnings.map((w) => w.rule))];
  const error = directive.error && warnings.length > 0 ? `lint violation found for rules: ${failedRules.join(', ')}` : undefined;
  if (format === 'json') {
    const json = {
      warnings: warnings.map((w) => { const r = ruleOf(w.rule); return { ruleName: r.name, description: r.description, url: r.url, detail: w.detail, location: location(w.ins) }; }),
      sources: lintSources(input),
      ...(error ? { buildError: { message: error } } : {}),
    };
    return { output: `${JSON.stringify(json, null, 2)}\n`, exitCode: warnings.length > 0 ? 1 : 0 };
  }
  // BuildKit's lint PrintTo: a blank line, the rule and its link, the detail, the source lines.
  let out = '';
  for (const w of warnings) {
    const r = ruleOf(w.rule);
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
