// Loaded by `up` and `down` only: the local cluster (hostkit, PKI generation, process control).
export { startLocalCluster, stopLocalCluster } from '@buildyard/client';
