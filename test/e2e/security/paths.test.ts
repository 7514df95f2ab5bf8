// Issue 14, item 1: paths a build names resolve inside their own root. The attacker's stage
// makes a symlink to `/` (or climbs with `..`); a later stage bind-mounts it (also rw), copies
// through it, seeds a cache from it, or mounts a cache subdirectory it turned into a link. Each
// time the link means the stage's own `/`: the host's files (a planted "cluster token" here) are
// neither read nor written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { solve } from '../grpcClient.js';
import { clusterFixture } from './clusterFixture.js';

const fx = clusterFixture({ workers: 1 }, 'paths');
/** A directory on the worker's host holding a secret and the place the attacker tries to write. */
let hostDir: string;
const secret = `HOST-SECRET-${process.pid}-${Date.now()}`;

before(() => {
  hostDir = mkdtempSync(join(tmpdir(), 'buildyard-host-'));
  writeFileSync(join(hostDir, 'token'), secret);
});
after(() => {
  if (hostDir) rmSync(hostDir, { recursive: true, force: true });
});

/** The attacker's first stage: links to the root, by absolute path, by `..` and chained. */
const evilStage = (base: string) => `FROM ${base} AS evil
RUN ln -s / /hostroot && ln -s ../../../../../../.. /up && mkdir -p /a/b && ln -s ../../hostroot/.. /a/b/chain && echo stage-own > /stage-file
`;

/** Runs the attack; every RUN prints what it saw and tries to write next to the secret. */
async function attack(name: string, dockerfile: string): Promise<string> {
  const outcome = await solve(fx.cluster, fx.context(name, dockerfile), { platforms: ['linux/amd64'], noCache: true });
  assert.ok(!outcome.logs.includes(secret), `the host's secret was read by the build: ${outcome.logs.slice(0, 2000)}`);
  assert.deepEqual(readdirSync(hostDir), ['token'], 'nothing was written into the host directory');
  assert.equal(outcome.error, undefined, `the build itself succeeds (it just sees its own files): ${outcome.error?.message}`);
  return outcome.logs;
}

/** Shell run in the victim stage: read the host secret and write next to it through `dir`. */
const probe = (dir: string, tag: string) =>
  `sh -c 'cat ${dir}${hostDir}/token 2>/dev/null; echo pwned > ${dir}${hostDir}/pwned 2>/dev/null; cat ${dir}/stage-file 2>/dev/null && echo ${tag}-SAW-STAGE; echo ${tag}-done'`;

test('bind mounts from a stage: a symlink to / (absolute, "..", chained) is the stage\'s root, ro and rw', async () => {
  const base = fx.cluster.busybox.reference;
  const logs = await attack('bind', `${evilStage(base)}
FROM ${base}
RUN --mount=type=bind,from=evil,source=/hostroot,target=/mnt,rw ${probe('/mnt', 'RW')}
RUN --mount=type=bind,from=evil,source=/hostroot,target=/mnt ${probe('/mnt', 'RO')}
RUN --mount=type=bind,from=evil,source=up,target=/mnt,rw ${probe('/mnt', 'UP')}
RUN --mount=type=bind,from=evil,source=/a/b/chain,target=/mnt,rw ${probe('/mnt', 'CHAIN')}
`);
  // Each link resolved to the stage's own root: the stage's file is there, the host's is not.
  for (const tag of ['RW', 'RO', 'UP', 'CHAIN']) assert.match(logs, new RegExp(`${tag}-SAW-STAGE`), `${tag}: the mount shows the stage's root`);
});

test('context symlinks to / (absolute, "..") are sent as links, as BuildKit does; bind mounts and COPY through them see the context, never the host', async () => {
  const base = fx.cluster.busybox.reference;
  const dir = fx.context('ctx-links', `FROM ${base}
COPY . /ctx/
RUN readlink /ctx/hostroot && readlink /ctx/up && echo LINKS-KEPT
RUN --mount=type=bind,source=hostroot,target=/mnt ${probe('/mnt', 'CTX')}
RUN --mount=type=bind,source=up,target=/mnt,rw ${probe('/mnt', 'CTXUP')}
COPY hostroot/stage-file /got-file
RUN cat /got-file
`);
  writeFileSync(join(dir, 'stage-file'), 'context-own\n');
  symlinkSync('/', join(dir, 'hostroot'));
  symlinkSync('../../../../../../..', join(dir, 'up'));
  const outcome = await solve(fx.cluster, dir, { platforms: ['linux/amd64'], noCache: true });
  assert.ok(!outcome.logs.includes(secret), `the host's secret was read by the build: ${outcome.logs.slice(0, 2000)}`);
  assert.deepEqual(readdirSync(hostDir), ['token'], 'nothing was written into the host directory');
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, /LINKS-KEPT/, 'COPY . keeps the links as links');
  for (const tag of ['CTX', 'CTXUP']) assert.match(outcome.logs, new RegExp(`${tag}-SAW-STAGE`), `${tag}: the mount shows the context's root`);
  assert.match(outcome.logs, /context-own/, 'COPY through the link took the context\'s file');
  const thief = fx.context('ctx-links-host', `FROM ${base}\nCOPY hostroot${hostDir}/token /stolen\n`);
  symlinkSync('/', join(thief, 'hostroot'));
  const stolen = await solve(fx.cluster, thief, { platforms: ['linux/amd64'], noCache: true });
  assert.ok(stolen.error, 'copying a host path through a context link fails: it is not in the context');
  assert.ok(!stolen.logs.includes(secret) && !stolen.error.message.includes(secret));
});

test('a bind source that only exists on the host fails with a clear error naming the mount', async () => {
  const base = fx.cluster.busybox.reference;
  const outcome = await solve(fx.cluster, fx.context('bind-missing', `${evilStage(base)}
FROM ${base}
RUN --mount=type=bind,from=evil,source=/hostroot${hostDir}/token,target=/t cat /t
`), { platforms: ['linux/amd64'], noCache: true });
  assert.ok(outcome.error, 'the build fails');
  assert.match(outcome.error.message, /RUN --mount=type=bind,source=.*does not exist in the mounted source/);
  assert.ok(!outcome.logs.includes(secret) && !outcome.error.message.includes(secret));
});

test('COPY --from a stage through its symlink to / copies the stage\'s files, never the host\'s', async () => {
  const base = fx.cluster.busybox.reference;
  const outcome = await solve(fx.cluster, fx.context('copy', `${evilStage(base)}
FROM ${base}
COPY --from=evil /hostroot/stage-file /up/stage-file /got/
RUN cat /got/stage-file && echo COPY-ok
COPY --from=evil /hostroot${hostDir}/token /stolen
`), { platforms: ['linux/amd64'], noCache: true });
  assert.match(outcome.logs, /stage-own/);
  assert.ok(outcome.error, 'copying the host path fails: it does not exist in the stage');
  assert.ok(!outcome.logs.includes(secret) && !outcome.error.message.includes(secret));
});

test('cache mounts: seeded from a stage\'s link to /, and a source that an earlier RUN made a link, stay inside', async () => {
  const base = fx.cluster.busybox.reference;
  const id = `c-${process.pid}-${Date.now()}`;
  const logs = await attack('cache', `${evilStage(base)}
FROM ${base}
RUN --mount=type=cache,id=${id}-seed,from=evil,source=/hostroot,target=/c ${probe('/c', 'SEED')}
RUN --mount=type=cache,id=${id},target=/c ln -sfn / /c/esc && ln -sfn ../../../.. /c/up && echo in-cache > /c/stage-file
RUN --mount=type=cache,id=${id},source=esc,target=/x ${probe('/x', 'ESC')}
RUN --mount=type=cache,id=${id},source=up,target=/x ${probe('/x', 'CUP')}
`);
  for (const tag of ['SEED', 'ESC', 'CUP']) assert.match(logs, new RegExp(`${tag}-SAW-STAGE`), `${tag}: the cache mount shows the cache's (or stage's) own root`);
  assert.ok(!existsSync(join(hostDir, 'pwned')));
});
