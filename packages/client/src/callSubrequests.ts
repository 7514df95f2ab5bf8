// `buildyard build --call=targets|outline|check` and `--check` (buildx's --call, BuildKit's
// frontend/subrequests/{targets,outline,lint}). Answered on the client (@buildyard/dockerfile's
// answerSubrequest, which the BuildKit endpoint also serves buildx with): the CLI already holds the
// Dockerfile, so uploading the context and asking the builder would return the same answer, only
// later and over the network.
import { answerSubrequest, SubrequestError, type SubrequestInput } from '@buildyard/dockerfile';
import { usageError } from './ClientError.js';
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

export type CallInput = SubrequestInput;

export interface CallResult { output: string; exitCode: number }

/** Answers a subrequest from the Dockerfile text as buildx prints it (throws DockerfileError on a parse error). */
export function runCallSubrequest(call: CallRequest, input: CallInput): CallResult {
  if (call.name === 'build') throw usageError('build: --call=build is a normal build, not a subrequest');
  let answer;
  try {
    answer = answerSubrequest(call.name === 'check' ? 'frontend.lint' : `frontend.${call.name}`, input);
  } catch (err) {
    if (err instanceof SubrequestError) throw usageError(`build: ${err.message}`);
    throw err;
  }
  if (call.format === 'json') return { output: `${JSON.stringify(answer.json, null, 2)}\n`, exitCode: answer.statusCode ?? 0 };
  if (call.name !== 'check') return { output: answer.text, exitCode: 0 };
  // buildx's lint printer: the warnings, then the build error and the summary.
  const { warnings, buildError } = answer.json as { warnings: unknown[]; buildError?: { message: string } };
  let out = answer.text;
  if (warnings.length > 0) out += '\n';
  if (buildError) out += `ERROR: ${buildError.message}\n`;
  out += warnings.length === 0 ? 'Check complete, no warnings found.\n'
    : `Check complete, ${warnings.length === 1 ? '1 warning has' : `${warnings.length} warnings have`} been found!\n`;
  // buildx: a check that finds warnings fails, so CI can gate on `--check`.
  return { output: out, exitCode: warnings.length > 0 ? 1 : 0 };
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
