export { RuncExecutor, type RuncExecutorOptions } from './RuncExecutor.js';
export type { Meta, Mount, RunOptions, RunResult, NetworkMode, ExtraHost } from './types.js';
export { ExecError, ExecTimeoutError, AbortError } from './errors.js';
export { resolveUser, type ResolvedUser } from './resolveUser.js';
export { detectPlatforms, needsEmulation, canRunPlatform, normalizePlatform, type Platforms } from './detectPlatforms.js';
export { buildRuntimeSpec, defaultCapabilities, defaultPath, type SpecInput } from './buildRuntimeSpec.js';
export type { RuntimeSpec } from './runtimeSpec.js';
