// One cluster per test file and a scratch dir for its build contexts, started before the
// file's tests and removed after them.
import { after, before } from 'node:test';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterOptions } from '@buildyard/testkit';

export interface ClusterFixture {
  readonly cluster: Cluster;
  /** A build context named `name` holding this Dockerfile. */
  context(name: string, dockerfile: string): string;
}

/** `options` may be made in the file's before hook (e.g. naming a registry started there). */
export function clusterFixture(options: ClusterOptions | (() => Promise<ClusterOptions>), label: string): ClusterFixture {
  let cluster: Cluster | undefined;
  let work = '';
  before(async () => {
    cluster = await startCluster(typeof options === 'function' ? await options() : options);
    work = mkdtempSync(join(tmpdir(), `buildyard-${label}-`));
  });
  after(async () => {
    try {
      await cluster?.stop();
    } finally {
      if (work) rmSync(work, { recursive: true, force: true });
    }
  });
  return {
    get cluster() {
      if (!cluster) throw new Error('the cluster is not started yet: use it inside a test');
      return cluster;
    },
    context(name, dockerfile) {
      const dir = join(work, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'Dockerfile'), dockerfile);
      return dir;
    },
  };
}
