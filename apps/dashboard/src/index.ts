// Public API of @buildyard/dashboard: the server the app wires (also used by e2e tests).
export { createDashboardServer, progressView, type DashboardServer, type DashboardServerOptions } from './api/createDashboardServer.js';
export { DashboardState, toBuildSummary, stageViews, type DashboardStateOptions, type BuildFilter } from './api/DashboardState.js';
export { QueueSampler } from './api/QueueSampler.js';
export { roleForToken, type Role, type DashboardTokens } from './api/auth.js';
export type * from './api/types.js';
