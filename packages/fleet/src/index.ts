export { FleetWorker, type FleetWorkerOptions } from './FleetWorker.js';
export { sandboxOptions, type WorkerSandbox } from './sandboxOptions.js';
