// The set-up several e2e files share: a network namespace playing "the outside" (a web server,
// DNS, denied ranges), one cluster whose options may name the outside's addresses, and temporary
// build contexts — started before the file's tests, stopped after them. The cluster stops first:
// its workers' containers route through the outside.
import { after, before } from 'node:test';
import { startCluster, type Cluster, type ClusterOptions } from '@buildyard/testkit';
import { ContextDirs } from './contextDirs.js';
import { startOutside, type Outside } from './outsideNetwork.js';

export interface OutsideCluster {
  readonly cluster: Cluster;
  readonly outside: Outside;
  readonly contexts: ContextDirs;
}

export interface OutsideClusterOptions {
  /** The cluster's options; may name the outside's addresses (default: one worker). */
  cluster?: (outside: Outside) => ClusterOptions;
  /** Starts what the file serves from the outside, before the cluster (hooks a file adds itself
   *  are not ordered against these: node:test may run a file's top-level hooks at once). */
  start?: (outside: Outside) => Promise<void>;
  /** Stops that, before the cluster and the outside stop. */
  stop?: () => void | Promise<void>;
}

/**
 * Registers the file's before/after hooks and returns what they start (read it inside tests).
 * Nothing starts when `run` is false (the file's tests skip).
 */
export function useOutsideCluster(name: string, run: boolean, options: OutsideClusterOptions = {}): OutsideCluster {
  const started: { cluster?: Cluster; outside?: Outside; contexts?: ContextDirs } = {};
  before(async () => {
    if (!run) return;
    started.outside = await startOutside();
    await options.start?.(started.outside);
    started.cluster = await startCluster(options.cluster?.(started.outside) ?? { workers: 1 });
    started.contexts = new ContextDirs(name);
  });
  after(async () => {
    try {
      if (started.outside) await options.stop?.();
      await started.cluster?.stop();
    } finally {
      await started.outside?.stop();
      started.contexts?.remove();
    }
  });
  return started as OutsideCluster;
}
