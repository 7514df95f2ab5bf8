// Public API of @buildyard/executor: the Executor interface and RuncExecutor (bundles, users,
// mounts, network sandbox, limits), emulation detection.
export { RuncExecutor, type RuncExecutorOptions } from './RuncExecutor.js';
export type { Executor } from './Executor.js';
export type { Meta, Mount, RunOptions, RunResult, NetworkMode, ExtraHost } from './types.js';
export { ExecError, ExecTimeoutError, AbortError } from './errors.js';
export { resolveUser, type ResolvedUser } from './resolveUser.js';
export { detectPlatforms, needsEmulation, canRunPlatform, normalizePlatform, type Platforms } from './detectPlatforms.js';
export { buildRuntimeSpec, defaultCapabilities, defaultPath, type SpecInput } from './buildRuntimeSpec.js';
export type { RuntimeSpec } from './runtimeSpec.js';
export { EgressNetworks, type EgressPolicy } from './EgressNetworks.js';
export { EgressRules, builtinProtected, privateRanges, type EgressRuleLists, type EgressVerdict, type TenantEgressRules } from './egressRules.js';
export type { DnsConfig } from './etcFiles.js';
export type { EgressLists } from './types.js';
export { parseCidr, parseCidrList } from './ipv4.js';
export { ExecLimitError } from './errors.js';
export { UlimitError, type Ulimit } from './rlimits.js';
export type { StepLimits } from './StepCgroups.js';
