// Public API of @buildyard/client: everything `buildyard` (apps/cli) does, as functions.
export { ClientError, ExitCode, usageError } from './ClientError.js';
export { parseCsv, parseCsvAttrs } from './parseCsv.js';
export {
  parseBuildFlags, parseOutput, parseCacheSpec, parseSecret, parseBuildArgs, parsePlatforms, parseLabels, PROGRESS_MODES,
  type BuildFlags, type BuildOptions, type SecretSource, type ProgressMode, type ParseEnv,
} from './parseBuildFlags.js';
export { readSecrets } from './readSecrets.js';
export { selectRegistryAuth, registriesOf, imageRefsInDockerfile, type AuthScope } from './selectRegistryAuth.js';
export {
  BuilderStore, defaultBuildersPath, parseEndpoint, DEFAULT_ENDPOINT,
  type BuilderConfig, type BuilderTls, type ResolvedBuilder,
} from './BuilderStore.js';
export { connectBuilder, withBuilderConnection, isServiceError, type BuilderConnection } from './connectBuilder.js';
export { preconnect, releasePreconnected } from './preconnect.js';
export { BuildProgress, describePlacement, formatSeconds, type VertexState } from './BuildProgress.js';
export {
  createRenderer, resolveProgressMode, formatSummary, PlainRenderer, QuietRenderer,
  type ProgressRenderer, type RendererMode, type CreateRendererOptions,
} from './ProgressRenderer.js';
export { renderTtyFrame, TtyRenderer, type TtyFrameOptions } from './TtyRenderer.js';
export { RawJsonRenderer } from './RawJsonRenderer.js';
export { formatBuildError, type ErrorReportInput } from './formatBuildError.js';
export { ExportedFileWriter } from './ExportedFileWriter.js';
export { resolveBuildInput, downloadContext, type BuildInput, type ResolveInputOptions } from './resolveBuildInput.js';
export { runBuild, buildMetadata, type RunBuildOptions } from './runBuild.js';
export { parseCall, runCall, runCallSubrequest, type CallRequest, type CallName, type RunCallOptions } from './callSubrequests.js';
export { inspectImage, createIndex, type InspectResult, type CreateIndexOptions, type CreateIndexResult } from './imagetools.js';
export { login, verifyRegistryLogin, type LoginOptions } from './login.js';
export { parseSize, formatBytes } from './sizes.js';
export {
  historyLs, historyInspect, historyLogs, historyRm, historyRecord, historyContextName, historyName, historyRef, historyDuration, humanDuration,
  formatHistoryLs, formatHistoryInspect, historyInspectJson, tabwriter, type HistoryLsFormat,
} from './history.js';
export { table, formatWorkers, formatInfo, formatDiskUsage, formatDiskUsageVerbose, formatPrune } from './formatTables.js';
export type { ListWorkersResponse, InfoResponse, DiskUsageResponse, PruneResponse, SolveEvent, WorkerInfo } from '@buildyard/proto';
export { startLocalCluster, stopLocalCluster, readLocalCluster, LOCAL_BUILDER, type LocalClusterInfo } from './localCluster.js';
