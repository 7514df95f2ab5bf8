export { FleetWorker, type FleetWorkerOptions } from './FleetWorker.js';
export { sandboxOptions, parseTenantLimits, type WorkerSandbox } from './sandboxOptions.js';
