// Issue 19 item 3: rolling restarts lose nothing. Two frontends and two workers; N builds run
// through the real CLI (half against each frontend) and push to the registry. While they run,
// every frontend is restarted (SIGTERM: it hands its builds to the other frontend and its
// clients re-attach to the restarted one), then every worker (SIGTERM: it drains, finishing
// its running stages, and is started again on its state dir). Every build must succeed, and
// the digest each CLI reports must be what the registry holds under the build's tag, with
// every blob of it matching its digest. The steps wait at gates, so each restart happens
// while builds are held mid-RUN, never after a guessed delay.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once, setMaxListeners } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { ControlClient, type StatusResponse } from '@buildyard/proto';
import { startCluster, within, type Cluster, type SupervisedProcess } from '@buildyard/testkit';
import { startGates, type Gates } from '../gate.js';
import { bearer } from '../grpcClient.js';
import { runCli, type ProcessRun } from '../runProcess.js';
import { unary } from '../security/clusterCalls.js';

// The issue asks for 20; BUILDYARD_ROLLING_BUILDS lowers it on a machine too slow for 20 CLIs at once.
const BUILDS = Number(process.env.BUILDYARD_ROLLING_BUILDS ?? 20);

let cluster: Cluster;
let gates: Gates;
let work: string;
// Kills the CLIs a failed test leaves behind (they would keep re-attaching to a stopped cluster).
const clis = new AbortController();
setMaxListeners(BUILDS + 10, clis.signal); // one listener per CLI

before(async () => {
  gates = await startGates();
  cluster = await startCluster({ workers: 2, env: { BUILDYARD_WORKER_CAPACITY: '2', BUILDYARD_LOG_LEVEL: 'info' } });
  work = mkdtempSync(join(tmpdir(), 'buildyard-rolling-'));
});
// Gates first: a step still held at one fails at once instead of keeping a worker busy.
after(async () => {
  clis.abort();
  await gates?.stop();
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/**
 * Sends SIGTERM to the process itself (not its watchdog, which would SIGKILL it after 5 s) and
 * waits for it to exit: a frontend hands its builds on at once and cuts calls left open after
 * 10 s, so a minute is a hang, reported with what the process said.
 */
async function terminate(p: SupervisedProcess, name: string): Promise<void> {
  const exited = once(p.child, 'exit');
  p.kill('SIGTERM');
  await within(60_000, `${name} exiting on SIGTERM`, exited).catch((err: Error) => {
    throw new Error(`${err.message}; its last output:\n${p.output().slice(-6000)}`);
  });
  await p.stop();
}

/** Resolves once ListWorkers on `address` shows worker `id` draining. */
async function draining(address: string, id: string): Promise<void> {
  const control = new ControlClient(address, credentials.createInsecure());
  try {
    for (;;) {
      const workers = await new Promise<{ id: string; draining: boolean }[]>((resolve, reject) =>
        control.listWorkers({}, bearer(cluster.token), (err, res) => (err ? reject(err) : resolve(res!.workers))));
      if (workers.some((w) => w.id === id && w.draining)) return;
      // Polled: the registry publishes the flag only to workers; a draining worker's own exit follows.
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    control.close();
  }
}

/** Resolves once the frontend at `address` lists `count` builds (every CLI's Solve was accepted). */
async function accepted(address: string, count: number, unless: Promise<unknown>): Promise<void> {
  let ended = false;
  unless.then(() => { ended = true; }, () => { ended = true; });
  for (;;) {
    const { builds } = await unary<StatusResponse>({ address }, 'status', { buildId: '', limit: count + 10 }, cluster.token);
    if (builds.length >= count) return;
    if (ended) await unless;
    // Polled: the frontend publishes no event when a build is accepted but its record.
    await new Promise((r) => setTimeout(r, 200));
  }
}

const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * The registry holds under `tag` the digest the CLI reported; that manifest (an index: its
 * manifests, attestations included), and every config and layer blob hash to their digests.
 */
async function verifyPushed(repository: string, tag: string, expected: string): Promise<void> {
  const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json';
  const get = async (path: string) => {
    const res = await fetch(`${cluster.registry.url}/v2/${repository}/${path}`, { headers: { accept } });
    assert.equal(res.status, 200, `${repository} ${path} is in the registry`);
    return Buffer.from(await res.arrayBuffer());
  };
  const verifyManifest = async (reference: string, digest: string): Promise<void> => {
    const bytes = await get(`manifests/${reference}`);
    assert.equal(sha256(bytes), digest, `${repository}@${reference} holds ${digest}`);
    const doc = JSON.parse(bytes.toString('utf8')) as { manifests?: { digest: string }[]; config?: { digest: string }; layers?: { digest: string }[] };
    for (const m of doc.manifests ?? []) await verifyManifest(m.digest, m.digest);
    for (const { digest: blob } of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) {
      assert.equal(sha256(await get(`blobs/${blob}`)), blob, `blob ${blob} of ${repository}:${tag} matches its digest`);
    }
  };
  await verifyManifest(tag, expected);
}

// 9 minutes, under the run guard's 10 (scripts/test-guard.mjs): a hang fails here, with every
// process's output (t.after below), instead of the file being stopped without a word.
test(`restarting every frontend and every worker one by one during ${BUILDS} running builds loses none: all succeed and push verified digests`, { timeout: 540_000 }, async (t) => {
  const step = (what: string) => t.diagnostic(`${new Date().toISOString()} ${what}`);
  const run = randomBytes(4).toString('hex');
  const gate = (n: number) => `rolling-${run}-${n}`;
  const second = await cluster.addFrontend();
  const frontends = [
    { address: cluster.address, process: cluster.frontendProcess },
    { address: second.address, process: second.process },
  ];
  const everyFrontend = frontends.map((f) => f.process);
  const repository = `rolling-${run}`;
  // Each build: three chained stages with a gated step each (one gate per restart phase; a
  // draining worker finishes the stage it runs, so the next phase's step must be another
  // stage), its own content so nothing is shared through the cache, pushed under its own tag.
  const builds = Array.from({ length: BUILDS }, (_, i) => {
    const dir = join(work, `build-${i}`);
    mkdirSync(dir);
    writeFileSync(join(dir, 'Dockerfile'), [
      `FROM ${cluster.busybox.reference} AS one`,
      `RUN ${gates.wait(gate(1))} && echo ${run}-${i} > /one`,
      'FROM one AS two',
      `RUN ${gates.wait(gate(2))} && cat /one > /two`,
      'FROM two',
      `RUN ${gates.wait(gate(3))} && cat /two > /three`,
      '',
    ].join('\n'));
    const tag = `b${i}`;
    const frontend = frontends[i % 2];
    const cli: Promise<ProcessRun> = runCli({ frontend: `tcp://${frontend.address}`, token: cluster.token }, dir,
      ['build', '--progress', 'plain', '--metadata-file', join(dir, 'metadata.json'), '-t', `${cluster.registry.host}/${repository}:${tag}`, '--push', '.'], cluster.token, clis.signal);
    return { i, dir, tag, cli };
  });
  const ended = Promise.all(builds.map((b) => b.cli));
  // What the processes said, when the test fails (their logs are the only record of a takeover).
  let passed = false;
  t.after(() => {
    if (passed) return;
    for (const f of everyFrontend) t.diagnostic(`frontend (pid ${f.child.pid}):\n${f.output().slice(-6000)}`);
    for (const w of cluster.workers) t.diagnostic(`${w.id}:\n${w.process.output().slice(-3000)}`);
  });
  // Any CLI ending before its gates opened has failed: fail the wait (with its words) rather than hang.
  const unless = Promise.race(builds.map((b) => b.cli.then((r) => { throw new Error(`build ${b.i} ended early (exit ${r.status}): ${r.stderr.slice(-1500)}`); })));
  unless.catch(() => undefined);
  const slots = 4; // 2 workers x capacity 2

  // Phase 1: every build is accepted (a client whose frontend is down before that has no build to
  // re-attach to) and the first steps of as many as the workers hold are running: restart the frontends.
  await accepted(cluster.address, BUILDS, unless);
  await gates.arrived(gate(1), { count: Math.min(slots, BUILDS), unless });
  for (const [n, f] of frontends.entries()) {
    step(`stopping frontend ${n}`);
    await terminate(f.process, `frontend ${n}`);
    step(`frontend ${n} stopped`);
    const restarted = await cluster.addFrontend(f.address);
    frontends[n] = { address: f.address, process: restarted.process };
    everyFrontend.push(restarted.process);
  }
  gates.open(gate(1));

  // Phases 2 and 3: a worker is asked to stop while steps are held on the fleet; it drains (takes
  // no more work), then finishes its steps once they may go on, exits, and is started again.
  for (const [n, worker] of [...cluster.workers].entries()) {
    const g = gate(n + 2);
    await gates.arrived(g, { count: 2, unless });
    step(`stopping ${worker.id}`);
    const exited = once(worker.process.child, 'exit');
    worker.process.kill('SIGTERM');
    await draining(frontends[0].address, worker.id);
    gates.open(g);
    await exited;
    await worker.process.stop();
    await cluster.addWorker(worker.id);
    step(`${worker.id} restarted`);
  }

  const results = await ended;
  for (const b of builds) {
    const r = results[b.i];
    assert.equal(r.status, 0, `build ${b.i} succeeded: ${r.stderr.slice(-3000)}`);
    const metadata = JSON.parse(readFileSync(join(b.dir, 'metadata.json'), 'utf8')) as Record<string, string>;
    await verifyPushed(repository, b.tag, metadata['containerimage.digest']);
  }
  passed = true;
  // The restarts really cut clients off: some CLIs attached again.
  assert.ok(results.some((r) => /attaching to build .* again/.test(r.stderr)), 'at least one client re-attached after its frontend restarted');
});
