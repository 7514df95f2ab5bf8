export { startRedis, startRegistry, type RedisService, type RegistryService } from './services.js';
export { seedBusybox, busyboxRootfs, busyboxLayout, type SeededImage, type BusyboxArch } from './busybox.js';
export { supervise, freePort, waitUntilReady, type SupervisedProcess } from './supervise.js';
export { startCluster, type Cluster, type ClusterOptions, type ClusterWorker } from './cluster.js';
export { cleanupUnder } from './cleanupUnder.js';
export { until } from './until.js';
export { startRegistryProxy, type RegistryProxy, type ProxyOptions } from './registryProxy.js';
