// Public API of @buildyard/fleet: the worker's fleet mode — stage jobs from the scheduler run
// with the solver, progress, metrics, leases and local GC. It reads stage payloads and sealed
// secrets through @buildyard/contracts and never loads the frontend (control).
export { FleetWorker, type FleetWorkerOptions } from './FleetWorker.js';
export { sandboxOptions, parseTenantLimits, type WorkerSandbox } from './sandboxOptions.js';
