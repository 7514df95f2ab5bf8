// Public API of @buildyard/testkit (tests only): real Redis, registries and clusters. What a
// machine needs outside tests too (busybox, freePort, cleanupUnder) is @buildyard/hostkit's.
export { startRedis, startRegistry, type RedisService, type RegistryService, type RegistryOptions } from './services.js';
// Base images, ports and state-dir cleanup live in @buildyard/hostkit (`buildyard up` needs them too).
export { seedBusybox, busyboxRootfs, busyboxLayout, cleanupUnder, freePort, type SeededImage, type BusyboxArch } from '@buildyard/hostkit';
export { supervise, waitUntilReady, type SupervisedProcess } from './supervise.js';
export { startCluster, type Cluster, type ClusterOptions, type ClusterWorker } from './cluster.js';
export { until, within } from './until.js';
export { startRedisCluster, type RedisClusterService, type RedisClusterNode, type RedisClusterOptions } from './redisCluster.js';
export { startSshAgent, makeSshKey, type SshAgentService, type SshKey } from './sshAgent.js';
export { referenceTools, referenceToolsDir, type ReferenceTool } from './referenceTools.js';
export { startRegistryProxy, type RegistryProxy, type ProxyOptions } from './registryProxy.js';
export { startGitServer, type GitServer } from './gitServer.js';
export { sshRelayFixture, sshAdd, type SshRelayFixture } from './sshRelayFixture.js';
export { seededRegistryFixture, type SeededRegistryFixture } from './seededRegistryFixture.js';
export { appCommand, type BuildyardApp } from './appCommand.js';
export { testWorkDir } from './testWorkDir.js';
export { pushCraftedImage, type CraftedEntry } from './craftedImage.js';
export { zerosTar } from './zerosTar.js';
