// BuildKit's Dockerfile linter (frontend/dockerfile/linter): the rules that can be found from the
// text alone, the `check` directive, and what a build reports of them. `build --check` prints
// every warning (all stages); a build reports those of the stages it builds and fails on them
// when the directive or BUILDKIT_DOCKERFILE_CHECK says error=true, as dockerfile2llb does.
import type { Instruction, ParsedDockerfile, ParsedStage } from './parse.js';
import { hostArch, normalizeArch, parsePlatform, type Platform } from '@buildyard/graph';
import { parseReference } from '@buildyard/oci';
import { suggest } from './instructions/suggest.js';
import { portSpecParts } from './instructions/expose.js';
import { expandWord } from './expandWord.js';
import { platformArgs } from './platformArgs.js';

/** The instruction keyword as written (the parser upper-cases `keyword`). */
function writtenKeyword(ins: Instruction): string {
  return /^\s*(\S+)/.exec(ins.text)?.[1] ?? ins.keyword;
}

/** The name as written (`AS Release`); BuildKit's targets and outline show it lower-cased (`s.name`). */
export const stageNameAsWritten = (s: ParsedStage): string | undefined => (s.from.args.length === 3 ? s.from.args[2] : undefined);
export const platformFlag = (ins: Instruction): string | undefined => ins.flags.find((f) => f.name === 'platform')?.value;

/** An ARG's `key[=value]` pairs, quotes around a value removed. */
export function argPairs(ins: Instruction): { key: string; value?: string }[] {
  return ins.args.map((a) => {
    const eq = a.indexOf('=');
    return eq < 0 ? { key: a } : { key: a.slice(0, eq), value: a.slice(eq + 1).replace(/^"(.*)"$/, '$1') };
  });
}

export interface LintRule { name: string; description: string; url?: string }
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
  InvalidBaseImagePlatform: 'Base image platform does not match expected target platform',
  UndefinedVar: 'Variables should be defined before their use',
  InvalidDefaultArgInFrom: 'Default value for global ARG results in an empty or invalid base image name',
  FromPlatformFlagConstDisallowed: 'FROM --platform flag should not use a constant value',
  ExposeProtoCasing: 'Protocol in EXPOSE instruction should be lowercase',
  ExposeInvalidFormat: 'IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release',
} as const;
/** Rules BuildKit's ruleset gives no documentation URL. */
const WITHOUT_URL = new Set<string>(['InvalidBaseImagePlatform']);
export type LintRuleName = keyof typeof RULES;

export function lintRule(name: LintRuleName): LintRule {
  // docs.docker.com/go/dockerfile/rule/<kebab-case>/ is where BuildKit's rules link.
  const kebab = name.replace(/JSON/g, 'Json').replace(/([a-z])([A-Z])/g, '$1-$2').toLowerCase();
  return { name, description: RULES[name], ...(WITHOUT_URL.has(name) ? {} : { url: `https://docs.docker.com/go/dockerfile/rule/${kebab}/` }) };
}

export interface LintWarning { rule: LintRuleName; detail: string; ins: Instruction }

// Args BuildKit defines for every FROM (the automatic platform args).
const BUILTIN_ARGS = new Set(['BUILDPLATFORM', 'BUILDOS', 'BUILDARCH', 'BUILDVARIANT', 'TARGETPLATFORM', 'TARGETOS', 'TARGETARCH', 'TARGETVARIANT', 'TARGETSTAGE']);

export function varsIn(word: string): string[] {
  return [...word.matchAll(/\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))/g)].map((m) => m[1] ?? m[2]);
}

// BuildKit's SecretsUsedInArgOrEnv token lists: a key with one of these words between `_` or the ends.
const SECRET_DENY = /(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)/i;
const SECRET_ALLOW = /(?:_|^)(?:public|file|version)(?:_|$)/i;
/** UndefinedArgInFrom (and a build's UndefinedVar) warnings that get a "(did you mean X?)" hint; later ones have none. */
export const MAX_UNDEFINED_ARG_HINTS = 20;
/** Build args BuildKit never puts in the env, so it does not call them undefined either. */
const NON_ENV_ARGS = new Set(['BUILDKIT_SBOM_SCAN_CONTEXT', 'BUILDKIT_SBOM_SCAN_STAGE']);

/**
 * BuildKit's UndefinedVar for a name an instruction's word read that is not in its env (nor a
 * declared ARG: the caller leaves those out); null for the args BuildKit keeps out of the env.
 * `defined` gives the hint, when the caller still wants one (see MAX_UNDEFINED_ARG_HINTS).
 */
export function undefinedVarWarning(name: string, ins: Instruction, defined?: readonly string[]): LintWarning | null {
  if (NON_ENV_ARGS.has(name)) return null;
  const hint = defined && suggest(name, defined, true);
  return { rule: 'UndefinedVar', detail: `Usage of undefined variable '$${name}'${hint ? ` (did you mean $${hint}?)` : ''}`, ins };
}

/** Every warning BuildKit's linter would report that can be found from the text alone. */
export function lintDockerfile(df: ParsedDockerfile): LintWarning[] {
  const out: LintWarning[] = [];
  const warn = (rule: LintRuleName, detail: string, ins: Instruction) => { out.push({ rule, detail, ins }); };
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
  const hintOptions = [...metaNames, ...BUILTIN_ARGS];
  // Each hint searches every declared name: a few are hints, thousands (an attacker's
  // Dockerfile, linted on the frontend for every build) would be declared names x undefined ones.
  let hintsLeft = MAX_UNDEFINED_ARG_HINTS;
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
    const name = stageNameAsWritten(s);
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
      const hint = hintsLeft-- > 0 ? suggest(v, hintOptions, true) : undefined;
      warn('UndefinedArgInFrom', `FROM argument '${v}' is not declared${hint ? ` (did you mean ${hint}?)` : ''}`, from);
    }
    if (platform === '$TARGETPLATFORM' || platform === '${TARGETPLATFORM}') {
      warn('RedundantTargetPlatform', `Setting platform to predefined ${platform} in FROM is redundant as this is the default behavior`, from);
    }
    const constPlatform = platform === undefined ? undefined : constantPlatform(platform, s.name ?? '', df.escape);
    if (constPlatform !== undefined) warn('FromPlatformFlagConstDisallowed', `FROM --platform flag should not use constant value ${JSON.stringify(constPlatform)}`, from);
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
      if (ins.keyword === 'EXPOSE') {
        for (const raw of ins.args) {
          const misuse = exposeMisuse(raw);
          if (misuse.protoCasing) warn('ExposeProtoCasing', `Defined protocol '${raw}' in EXPOSE instruction should be lowercase`, ins);
          if (misuse.hostMapping) warn('ExposeInvalidFormat', `EXPOSE instruction should not define an IP address or host-port mapping, found '${raw}'`, ins);
        }
      }
      if (['CMD', 'ENTRYPOINT', 'HEALTHCHECK'].includes(ins.keyword)) {
        const list = seen.get(ins.keyword);
        if (list) list.push(ins);
        else seen.set(ins.keyword, [ins]);
      }
    }
    for (const [kw2, list] of seen) {
      for (const ins of list.slice(0, -1)) {
        warn('MultipleInstructionsDisallowed', `Multiple ${kw2} instructions should not be used in the same stage because only the last one will be used`, ins);
      }
    }
  }
  for (const from of fromsInvalidWithDefaults(df)) {
    warn('InvalidDefaultArgInFrom', `Default value for ARG ${from.args[0]} results in empty or invalid base image name`, from);
  }
  return out.sort((a, b) => a.ins.startLine - b.ins.startLine);
}

/**
 * FROM --platform's value when it is a constant BuildKit warns about: no variable in it, a
 * platform that parses, and a stage name that does not mention its OS or architecture
 * (`AS build-arm64` says on purpose what it is for).
 */
function constantPlatform(platform: string, stageName: string, escape: string): string | undefined {
  if (varsIn(platform).length > 0) return undefined;
  try {
    const value = expandWord(platform, new Map(), { escape });
    const p = parsePlatform(value, { allowUnknown: true });
    return stageName.includes(p.os) || stageName.includes(p.architecture) ? undefined : value;
  } catch {
    return undefined; // the build fails on it later, with its own error
  }
}

/** EXPOSE word misuse BuildKit's linter names; a word with variables is left to the build, whose error comes first. */
function exposeMisuse(raw: string): { protoCasing: boolean; hostMapping: boolean } {
  if (raw.includes('$')) return { protoCasing: false, hostMapping: false };
  try {
    const parts = portSpecParts(raw);
    return { protoCasing: parts.proto !== parts.proto.toLowerCase(), hostMapping: parts.ip !== '' || parts.hostPort !== '' };
  } catch {
    return { protoCasing: false, hostMapping: false };
  }
}

/**
 * The FROMs whose image, expanded with the global ARGs' defaults (no build args), is empty or no
 * valid reference, as BuildKit's validateBaseImagesWithDefaultArgs. Its platform args are the
 * target platform's; here the host's stand in, as the check runs before a platform is chosen
 * (a name only a platform's value makes invalid is rare). An expansion error abandons the check,
 * as BuildKit does: the build reports it.
 */
function fromsInvalidWithDefaults(df: ParsedDockerfile): Instruction[] {
  const host = `linux/${hostArch()}`;
  const env = platformArgs(host, host, df.stages[df.stages.length - 1]?.name ?? '');
  // One pattern-matching budget for the whole check, so an attacker's FROMs cost one word's worth.
  const opts = { escape: df.escape, patternWork: { steps: 0 } };
  const invalid: Instruction[] = [];
  try {
    for (const ins of df.metaArgs) {
      for (const word of ins.args) {
        const eq = word.indexOf('=');
        // buildMetaArgs: an ARG without a value keeps the name's earlier (or built-in) value.
        if (eq < 0) continue;
        env.set(expandWord(word.slice(0, eq), env, opts), expandWord(word.slice(eq + 1), env, opts));
      }
    }
    for (const s of df.stages) {
      const image = expandWord(s.from.args[0], env, opts);
      if (!validReference(image)) invalid.push(s.from);
    }
  } catch {
    return [];
  }
  return invalid;
}

/** distribution/reference's ParseNormalizedNamed accepts it (untrimmed, any tag or digest). */
function validReference(name: string): boolean {
  if (name !== name.trim()) return false;
  try {
    parseReference(name);
    return true;
  } catch {
    return false;
  }
}

/** `# check=skip=A,B;error=true` (BuildKit's check directive, or the BUILDKIT_DOCKERFILE_CHECK build arg). */
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


/** A build's check settings: the BUILDKIT_DOCKERFILE_CHECK build arg when given, else the `check` directive (dockerui's order). */
export function checkSettings(df: ParsedDockerfile, checkArg: string | undefined): ReturnType<typeof parseCheckDirective> {
  return parseCheckDirective(checkArg ?? df.directives.find((d) => d.name === 'check')?.value);
}

/** Rules BuildKit runs as it dispatches a stage's instructions: a build meets them only in the stages it builds. */
const DISPATCH_RULES = new Set<LintRuleName>(['JSONArgsRecommended', 'WorkdirRelativePath', 'LegacyKeyValueFormat', 'SecretsUsedInArgOrEnv', 'ExposeProtoCasing', 'ExposeInvalidFormat', 'UndefinedVar']);

/**
 * What a build reports of the linter, as dockerfile2llb does: each warning as `Rule: detail`
 * (with its line), the dispatch-time rules only for the stages built (`built`: their indexes),
 * and, when the settings say error=true and anything was reported, the build's error.
 * `planned`: what planning found (InvalidBaseImagePlatform), reported under the same settings.
 */
export function lintBuild(df: ParsedDockerfile, checkArg: string | undefined, built: ReadonlySet<number>, planned: LintWarning[] = []): { warnings: { message: string; line: number }[]; error?: string } {
  const settings = checkSettings(df, checkArg);
  if (settings.all) return { warnings: [] };
  const inStages = new Set(df.stages.flatMap((s) => [s.from, ...s.instructions]));
  const inBuilt = new Set(df.stages.filter((_, i) => built.has(i)).flatMap((s) => [s.from, ...s.instructions]));
  const reported = [...lintDockerfile(df), ...planned].filter((w) => !settings.skip.has(w.rule) && (!DISPATCH_RULES.has(w.rule) || !inStages.has(w.ins) || inBuilt.has(w.ins)));
  const rules = [...new Set(reported.map((w) => w.rule))];
  return {
    warnings: reported.map((w) => ({ message: `${w.rule}: ${w.detail}`, line: w.ins.startLine })),
    ...(settings.error && rules.length > 0 ? { error: `lint violation found for rules: ${rules.join(', ')}` } : {}),
  };
}

/**
 * BuildKit's InvalidBaseImagePlatform (dockerfile2llb's validateBaseImagePlatform): a stage's
 * base image whose config names another OS or architecture than the stage's platform, which an
 * image that is one manifest (no index) may. Platforms shown as containerd's
 * FormatAll(Normalize(p)): arm64 as arm64/v8. Null when they match or the config names none.
 */
export function baseImagePlatformWarning(name: string, expected: Platform, image: { os?: unknown; architecture?: unknown; variant?: unknown }, from: Instruction): LintWarning | null {
  if (typeof image.os !== 'string' || typeof image.architecture !== 'string' || !image.os || !image.architecture) return null;
  const [arch] = normalizeArch(image.architecture, '');
  if (image.os === expected.os && arch === expected.architecture) return null;
  const actual = { os: image.os, architecture: image.architecture, variant: typeof image.variant === 'string' ? image.variant : '' };
  return { rule: 'InvalidBaseImagePlatform', detail: `Base image ${name} was pulled with platform "${formatAll(actual)}", expected "${formatAll(expected)}" for current build`, ins: from };
}

function formatAll(p: { os: string; architecture: string; variant?: string }): string {
  const [arch, normalized] = normalizeArch(p.architecture, p.variant ?? '');
  const variant = normalized || (arch === 'arm64' ? 'v8' : arch === 'arm' ? 'v7' : '');
  return [p.os, arch, variant].filter(Boolean).join('/');
}
