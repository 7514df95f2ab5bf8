// Public API of @buildyard/localbuild: buildLocal, the engine without Redis — Dockerfile
// planning (dockerfile) over the solver — used by `buildyard-worker run-local`.
export { buildLocal, type LocalBuildOptions, type LocalBuildResult } from './buildLocal.js';
