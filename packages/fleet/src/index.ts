export { FleetWorker, type FleetWorkerOptions } from './FleetWorker.js';
