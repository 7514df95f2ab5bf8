// Public API of @buildyard/solver: runs one planned stage over the Executor and Snapshotter
// interfaces (cache lookups, RUN, file ops, layer diffs) and assembles images. It knows no
// Dockerfile: planning is the frontend's (control, or localbuild without Redis).
export { StageSolver, type ImageSource, type SolverEvents, type VertexProgress, type StageSolverOptions, type SolveStageRequest } from './StageSolver.js';
export type { StageResult } from './StageResult.js';
export { StageAssembly, stageFromCache, stageBase, stageBaseKey, plannedVertexKeys, isUsableHit, withAnsweredInputs, answeredInputsOf, type SolvedVertex, type StageBaseState } from './StageAssembly.js';
export type { SshAgentSockets } from './RunMounts.js';
export { CACHE_MOUNTS_DIR, cacheMountDir, cacheMountTenant, forgetCacheMountTenant, isCacheMountRecord, recordCacheMountTenant } from './cacheMounts.js';
export { RegistryImageSource, registryImageResolver } from './RegistryImageSource.js';
export { assembleImage, assembleIndex, baseLayerCount, jsonBlob, platformObject, type AssembledImage, type Descriptor, type JsonBlob, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, MEDIA_TYPE_CONFIG } from './assembleImage.js';
export { openExecutionEngine, openLocalEngine, solvePlatform, storeImageDocuments, type SolvePlatformOptions } from './engine.js';
