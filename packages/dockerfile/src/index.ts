// Public API of @buildyard/dockerfile, the Dockerfile frontend: parse.ts (BuildKit's parser:
// lines, directives, heredocs, flag words), expandWord.ts (shell word expansion), instructions/
// (the instruction layer: each instruction's flags, RUN --mount, durations, ports, signals,
// units, did-you-mean), planBuild.ts (the converter to one stage graph per platform) and
// namedContexts.ts. .dockerignore matching and COPY file selection are fileop's, re-exported.
export {
  dockerignoreExcludes,
  parseDockerignore,
  compileDockerignore,
  DockerignorePatternError,
  type DockerignoreMatcher,
} from './dockerignore.js';
export { DockerfileError } from './DockerfileError.js';
export { checkSyntax } from './syntax.js';
export { defaultDockerfilePath } from './defaultDockerfile.js';
export { expandWord, expandWords, WordExpansionError, type ExpandOptions, type ExpansionEnv } from './expandWord.js';
export { parse, INSTRUCTIONS, type ParsedDockerfile, type ParsedStage, type Instruction, type Directive, type Flag, type Heredoc, type KeyValue, type ParseOptions } from './parse.js';
export { planBuild, DEFAULT_PATH, PROXY_ARGS, type PlanOptions, type ImageResolver, type ResolvedImage } from './planBuild.js';
// Git URLs as the build context, --build-context values and ADD sources (BuildKit's dfgitutil).
export { parseGitRef, isGitTransport, GitRefError, type GitRef } from '@buildyard/fileop';
// RUN --mount parsing, for `build --call=outline` (secrets and ssh mounts of a target).
export { parseRunMount, type ParsedMount } from './instructions/runMount.js';
// BuildKit's "(did you mean X?)" search, for the lint messages of `build --check`.
export { suggest } from './instructions/suggest.js';
// BuildKit's linter: `build --check` prints it, planBuild reports it (and fails on error=true).
export { lintDockerfile, lintBuild, lintRule, checkSettings, parseCheckDirective, argPairs, varsIn, platformFlag, stageNameAsWritten, type LintWarning, type LintRule, type LintRuleName } from './lint.js';
export { namedContextKey, type NamedContextSource } from './namedContexts.js';
export { parseShmSize, parseUlimit, ramInBytes, ResourceOptionError, type Ulimit } from './instructions/units.js';
// BuildKit's subrequests (outline, targets, lint, describe): `build --call` and the BuildKit endpoint.
export { answerSubrequest, subrequestMetadata, dockerfileExcerpt, SubrequestError, SUBREQUESTS, type SubrequestAnswer, type SubrequestInput } from './subrequests.js';
