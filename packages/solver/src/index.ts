export { StageSolver, type ImageSource, type SolverEvents, type VertexProgress, type StageSolverOptions, type SolveStageRequest } from './StageSolver.js';
export type { StageResult } from './StageResult.js';
export { RegistryImageSource, registryImageResolver } from './RegistryImageSource.js';
export { assembleImage, assembleIndex, platformObject, type AssembledImage, type Descriptor, type JsonBlob, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, MEDIA_TYPE_CONFIG } from './assembleImage.js';
export { openExecutionEngine, openLocalEngine, solvePlatform, storeImageDocuments, type SolvePlatformOptions } from './buildLocal.js';
