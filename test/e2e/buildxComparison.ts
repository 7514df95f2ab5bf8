// What the buildx comparison tests (buildxCompare*.test.ts) share: a cluster with its BuildKit
// endpoint and the reference buildkitd, each a remote-driver buildx builder ("ours" and
// "reference"), and an output folder reduced to what both must agree on.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { Buildkitd } from '../conformance/lib/buildkit.js';

export interface Run { code: number; stdout: string; stderr: string }

export interface Comparison {
  cluster: Cluster;
  buildkitd: Buildkitd;
  /** A scratch folder of the test's own (buildx's config lives in it). */
  work: string;
  /** docker-buildx with that config: `--builder ours` or `--builder reference`. */
  buildx(...args: string[]): Promise<Run>;
  stop(): Promise<void>;
}

export async function startComparison(buildxBin: string, workers: number): Promise<Comparison> {
  const cluster = await startCluster({
    workers,
    env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  let buildkitd: Buildkitd | undefined;
  const work = mkdtempSync(join(tmpdir(), 'buildyard-buildx-compare-'));
  const stop = async () => {
    await buildkitd?.stop();
    await cluster.stop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    buildkitd = await Buildkitd.start(cluster.registry.host);
    const buildx = (...args: string[]) => new Promise<Run>((resolveRun) => {
      execFile(buildxBin, args, { env: { ...process.env, BUILDX_CONFIG: join(work, 'buildx') }, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
    for (const [name, addr] of [['ours', cluster.buildkit!], ['reference', buildkitd.addr]] as const) {
      const created = await buildx('create', '--name', name, '--driver', 'remote', addr);
      assert.equal(created.code, 0, created.stderr);
    }
    return { cluster, buildkitd, work, buildx, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Every entry under `dir`: path, type, mode and content digest (or link target). Times are left out. */
export function tree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const path = rel ? `${rel}/${name}` : name;
    const st = lstatSync(join(dir, path));
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isSymbolicLink()) out.push(`${path} -> ${readlinkSync(join(dir, path))}`);
    else if (st.isDirectory()) out.push(`${path}/ ${mode}`, ...tree(dir, path));
    else out.push(`${path} ${mode} ${createHash('sha256').update(readFileSync(join(dir, path))).digest('hex').slice(0, 16)}`);
  }
  return out;
}
