// BuildKit's Dockerfile subrequests (frontend/subrequests: outline, targets, lint, describe),
// answered from the Dockerfile text: `buildyard build --call` on the client, and the BuildKit
// endpoint when buildx sends `requestid` (`--call`, `--check`, v0.10's `--print`). The results
// are the frontend's: result.json as Go's json.MarshalIndent writes those structs (field order
// and omitempty kept), result.txt as its printers.
import { argPairs, checkSettings, lintDockerfile, lintRule, platformFlag, varsIn } from './lint.js';
import { parse, type Instruction, type ParsedDockerfile, type ParsedStage } from './parse.js';
import { parseRunMount } from './instructions/runMount.js';

/** A subrequest the frontend does not answer, or one it cannot (an unknown target). */
export class SubrequestError extends Error {}

export interface SubrequestInput {
  dockerfile: string;
  dockerfileName: string;
  target?: string;
  buildArgs?: Record<string, string>;
}

/** A subrequest's answer: result.json's value, result.txt, its version, and lint's status code. */
export interface SubrequestAnswer {
  json: unknown;
  text: string;
  version: string;
  statusCode?: number;
}

export const SUBREQUESTS = ['frontend.outline', 'frontend.targets', 'frontend.lint', 'frontend.subrequests.describe'] as const;

const RULE = '--------------------';

/** `Dockerfile:3` and the lines around `line` (1-based), the offending ones marked `>>>` (BuildKit's errdefs Source.Print). */
export function dockerfileExcerpt(dockerfileText: string, fileName: string, line: number, endLine = line, context = 2): string[] {
  const lines = dockerfileText.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (line < 1 || line > lines.length) return [];
  const last = Math.min(Math.max(endLine, line), lines.length);
  const from = Math.max(1, line - context);
  const to = Math.min(lines.length, last + context);
  const out = [`${fileName}:${line === last ? line : `${line}-${last}`}`, RULE];
  for (let n = from; n <= to; n++) {
    const mark = n >= line && n <= last ? '>>>' : '   ';
    out.push(` ${String(n).padStart(3)} | ${mark} ${lines[n - 1]}`); // untrimmed, as errdefs Source.Print
  }
  out.push(RULE);
  return out;
}

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
const sourceData = (input: SubrequestInput) => Buffer.from(input.dockerfile).toString('base64');
const lintSources = (input: SubrequestInput) => [{ filename: input.dockerfileName, language: 'Dockerfile', data: sourceData(input) }];

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

function targets(df: ParsedDockerfile, input: SubrequestInput, lines: string[]) {
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

/** The earlier stage a stage's FROM names, if it names one. */
function baseStage(df: ParsedDockerfile, s: ParsedStage): ParsedStage | undefined {
  return df.stages.slice(0, s.index).reverse().find((p) => p.name === s.from.args[0].toLowerCase());
}

/** The stages a stage copies or mounts from (COPY --from, RUN --mount from=). */
function stageDependencies(df: ParsedDockerfile, s: ParsedStage): ParsedStage[] {
  const byName = (ref: string) => df.stages.find((p) => p.name === ref.toLowerCase()) ?? (/^\d+$/.test(ref) ? df.stages[Number(ref)] : undefined);
  const deps: ParsedStage[] = [];
  for (const ins of s.instructions) {
    for (const f of ins.flags) {
      const ref = f.name === 'from' ? f.value : f.name === 'mount' && f.value ? /(?:^|,)from=([^,]+)/.exec(f.value)?.[1] : undefined;
      const dep = ref ? byName(ref) : undefined;
      if (dep) deps.push(dep);
    }
  }
  return deps;
}

/** The target stage and every stage it reads (FROM, COPY --from, RUN --mount from=), in file order. */
function reachableStages(df: ParsedDockerfile, target: ParsedStage): ParsedStage[] {
  const seen = new Set<ParsedStage>();
  const visit = (s: ParsedStage | undefined) => {
    if (!s || seen.has(s)) return;
    seen.add(s);
    visit(baseStage(df, s));
    for (const dep of stageDependencies(df, s)) visit(dep);
  };
  visit(target);
  return [...seen].sort((a, b) => a.index - b.index);
}

/** Platform args every stage has without declaring them (dockerfile2llb's defaultArgs). */
const DEFAULT_ARGS = new Set(['BUILDPLATFORM', 'BUILDOS', 'BUILDOSVERSION', 'BUILDARCH', 'BUILDVARIANT', 'TARGETPLATFORM', 'TARGETOS', 'TARGETOSVERSION', 'TARGETARCH', 'TARGETVARIANT', 'TARGETSTAGE']);

interface OutlineArg { name: string; value?: string; ins: Instruction }

/**
 * The build args a target reads, as current BuildKit's outline lists them (convert.go's
 * buildMetaArgs and dispatchArg, outline.go's args): each stage sees the global ARGs, then its
 * base stage's, then its own ARGs, the last definition winning. A stage's `ARG X` with no value
 * that inherits a global value keeps the global definition (its value and line), so a default
 * platform arg redeclared in a stage is not listed. The target's view comes first, then its base
 * chain's and the stages it copies or mounts from; the list is in line order.
 */
function outlineArgs(df: ParsedDockerfile, input: SubrequestInput, target: ParsedStage): OutlineArg[] {
  const globals = new Map<string, OutlineArg>();
  const globalsWithValue = new Set(DEFAULT_ARGS);
  for (const ins of df.metaArgs) {
    for (const p of argPairs(ins)) {
      const value = input.buildArgs?.[p.key] ?? p.value;
      globals.set(p.key, { name: p.key, value, ins });
      if (value !== undefined) globalsWithValue.add(p.key);
    }
  }
  const seen = new Map<ParsedStage, { defined: Map<string, OutlineArg>; used: Set<string> }>();
  const stageArgs = (s: ParsedStage) => {
    const known = seen.get(s);
    if (known) return known;
    const base = baseStage(df, s);
    const inherited = base ? stageArgs(base) : undefined;
    const defined = new Map(inherited?.defined ?? globals);
    const used = new Set(inherited?.used);
    for (const v of varsIn(`${s.from.args[0]} ${platformFlag(s.from) ?? ''}`)) if (globalsWithValue.has(v)) used.add(v);
    for (const ins of s.instructions) {
      if (ins.keyword !== 'ARG') continue;
      for (const p of argPairs(ins)) {
        const given = input.buildArgs?.[p.key];
        const inheritsGlobal = p.value === undefined && given === undefined && globalsWithValue.has(p.key);
        if (!inheritsGlobal) defined.set(p.key, { name: p.key, value: given ?? p.value, ins });
        used.add(p.key);
      }
    }
    seen.set(s, { defined, used });
    return seen.get(s)!;
  };
  const listed = new Map<string, OutlineArg>();
  const visited = new Set<ParsedStage>();
  const visit = (s: ParsedStage | undefined) => {
    if (!s || visited.has(s)) return;
    visited.add(s);
    const { defined, used } = stageArgs(s);
    for (const name of used) {
      const arg = defined.get(name);
      if (arg && !listed.has(name)) listed.set(name, arg);
    }
    visit(baseStage(df, s));
    for (const dep of stageDependencies(df, s)) visit(dep);
  };
  visit(target);
  return [...listed.values()].sort((a, b) => a.ins.startLine - b.ins.startLine);
}

function outline(df: ParsedDockerfile, input: SubrequestInput, lines: string[]) {
  const target = input.target ? df.stages.find((s) => s.name === input.target!.toLowerCase()) : df.stages[df.stages.length - 1];
  if (!target) throw new SubrequestError(`target stage "${input.target!.slice(0, 100)}" could not be found in ${input.dockerfileName}; see --call=targets`);
  const stages = reachableStages(df, target);
  const args = outlineArgs(df, input, target).map(({ name, value, ins }) => {
    const description = descriptionAbove(lines, ins.startLine, name);
    return { name, ...value !== undefined ? { value } : {}, ...(description ? { description } : {}), location: location(ins) };
  });
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
    ...(args.length ? { args } : {}),
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

// ---- lint -------------------------------------------------------------------------------------

/** The lint subrequest's results (lint.LintResults) and its warnings as BuildKit's PrintTo writes them. */
function lint(df: ParsedDockerfile, input: SubrequestInput): SubrequestAnswer {
  const directive = checkSettings(df, input.buildArgs?.BUILDKIT_DOCKERFILE_CHECK);
  const warnings = directive.all ? [] : lintDockerfile(df).filter((w) => !directive.skip.has(w.rule));
  const failedRules = [...new Set(warnings.map((w) => w.rule))];
  const error = directive.error && warnings.length > 0 ? `lint violation found for rules: ${failedRules.join(', ')}` : undefined;
  const json = {
    warnings: warnings.map((w) => { const r = lintRule(w.rule); return { ruleName: r.name, description: r.description, url: r.url, detail: w.detail, location: location(w.ins) }; }),
    sources: lintSources(input),
    ...(error ? { buildError: { message: error } } : {}),
  };
  let text = '';
  for (const w of warnings) {
    const r = lintRule(w.rule);
    text += `\nWARNING: ${r.name}${r.url ? ` - ${r.url}` : ''}\n${w.detail}\n`;
    const excerpt = dockerfileExcerpt(input.dockerfile, input.dockerfileName, w.ins.startLine, w.ins.endLine);
    if (excerpt.length) text += `${excerpt.join('\n')}\n`;
  }
  return { json, text, version: '1.0.0', statusCode: warnings.length > 0 || error ? 1 : 0 };
}

// ---- describe ---------------------------------------------------------------------------------

const named = (name: string, description = '') => ({ name, description });
const RESULT_FILES = [named('result.json'), named('result.txt')];
/** The Dockerfile frontend's own list (dockerui's describe: outline, targets, then describe itself). */
const DESCRIBED = [
  { name: 'frontend.outline', version: '1.0.0', type: 'rpc', description: 'List all parameters current build target supports', opts: [named('target', 'Target build stage')], inputs: null, metadata: RESULT_FILES, refs: null },
  { name: 'frontend.targets', version: '1.0.0', type: 'rpc', description: 'List all targets current build supports', opts: [], inputs: null, metadata: RESULT_FILES, refs: null },
  { name: 'frontend.subrequests.describe', version: '1.0.0', type: 'rpc', description: 'List available subrequest types', opts: null, inputs: null, metadata: RESULT_FILES, refs: null },
];

function describe(): SubrequestAnswer {
  const text = tabwrite([['NAME', 'VERSION', 'DESCRIPTION'], ...DESCRIBED.map((r) => [r.name.replace(/^frontend\./, ''), r.version, r.description])], 1);
  return { json: DESCRIBED, text, version: '1.0.0' };
}

// ---- the subrequest ---------------------------------------------------------------------------

/**
 * Answers `requestid` NAME from the Dockerfile; a name the frontend does not know is a
 * SubrequestError "unsupported request NAME" (errdefs.UnsupportedSubrequestError's text).
 * Throws the parser's DockerfileError for a Dockerfile that does not parse.
 */
export function answerSubrequest(name: string, input: SubrequestInput): SubrequestAnswer {
  if (!(SUBREQUESTS as readonly string[]).includes(name)) throw new SubrequestError(`unsupported request ${name.slice(0, 100)}`);
  if (name === 'frontend.subrequests.describe') return describe();
  const df = parse(input.dockerfile, { file: input.dockerfileName });
  if (name === 'frontend.lint') return lint(df, input);
  const lines = input.dockerfile.split(/\r?\n/);
  if (name === 'frontend.targets') {
    const list = targets(df, input, lines);
    return { json: { targets: list, sources: [sourceData(input)] }, text: printTargets(list), version: '1.0.0' };
  }
  const o = outline(df, input, lines);
  return { json: { ...o, sources: [sourceData(input)] }, text: printOutline(o), version: '1.0.0' };
}

/** The answer as the frontend's result metadata (ToResult): what buildx reads back. */
export function subrequestMetadata(answer: SubrequestAnswer): Record<string, Buffer> {
  return {
    'result.json': Buffer.from(JSON.stringify(answer.json, null, 2)),
    'result.txt': Buffer.from(answer.text),
    ...(answer.statusCode !== undefined ? { 'result.statuscode': Buffer.from(String(answer.statusCode)) } : {}),
    version: Buffer.from(answer.version),
  };
}
