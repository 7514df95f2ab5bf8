// `buildyard build --progress rawjson` against the reference: the same Dockerfile built by the
// real buildctl/buildkitd (v0.11.6, whose `--trace` file is the same Go encoding of
// client.SolveStatus that `--progress rawjson` prints since v0.13, before that release gave the
// struct its lower-case `omitempty` JSON tags) and by a real cluster. The tags are applied to
// buildctl's objects; then the RUN step's updates must carry the same fields, name, logs per
// stream and time format.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { referenceTools, startCluster, type Cluster, appCommand, testWorkDir } from '@buildyard/testkit';
import { Buildkitd } from '../conformance/lib/buildkit.js';

const RUN_NAME = '[2/2] RUN echo hello-rawjson && echo to-stderr >&2';
const tools = referenceTools('buildctl', 'buildkitd');
const skip = tools.missing ?? false;
let cluster: Cluster;
let buildkitd: Buildkitd;
let work: string;
let context: string;

before(async () => {
  if (skip) return;
  cluster = await startCluster({ workers: 1 });
  buildkitd = await Buildkitd.start(cluster.registry.host);
  work = testWorkDir('buildyard-rawjson-e2e-');
  context = mkdtempSync(join(work, 'ctx-'));
  writeFileSync(join(context, 'Dockerfile'), `ARG BASE\nFROM \${BASE}\nRUN echo hello-rawjson && echo to-stderr >&2\n`);
});
after(async () => {
  await buildkitd?.stop();
  await cluster?.stop();
});

type Json = Record<string, unknown>;

/** client.SolveStatus's JSON tags since v0.13 (`json:"digest,omitempty"`, ...) applied to v0.11's untagged encoding. */
const ALWAYS = new Set(['id', 'current', 'timestamp', 'data']);
function tagged(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(tagged);
  if (!value || typeof value !== 'object') return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value as Json)) {
    const key = k === 'ID' ? 'id' : k[0].toLowerCase() + k.slice(1);
    const empty = v === null || v === false || v === '' || v === 0 || (Array.isArray(v) && v.length === 0);
    if (empty && !ALWAYS.has(key)) continue;
    out[key] = tagged(v);
  }
  return out;
}

interface Vertex { digest: string; name: string; started?: string; completed?: string; cached?: boolean; error?: string }
interface Log { vertex: string; stream: number; data: string; timestamp: string }
const vertexesOf = (updates: Json[]) => updates.flatMap((u) => (u.vertexes ?? []) as Vertex[]);
const logsOf = (updates: Json[]) => updates.flatMap((u) => (u.logs ?? []) as Log[]);
const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$/;

function summary(updates: Json[]): { keys: string[][]; name: string; stdout: string; stderr: string; logKeys: string[] } {
  const run = vertexesOf(updates).filter((v) => v.name === RUN_NAME);
  assert.ok(run.length > 0, `no update of "${RUN_NAME}" among ${JSON.stringify(vertexesOf(updates).map((v) => v.name))}`);
  for (const v of run) for (const t of [v.started, v.completed]) if (t) assert.match(t, RFC3339);
  const logs = logsOf(updates).filter((l) => l.vertex === run[0].digest);
  for (const l of logs) assert.match(l.timestamp, RFC3339);
  const text = (stream: number) => logs.filter((l) => l.stream === stream).map((l) => Buffer.from(l.data, 'base64').toString()).join('');
  // The first update that starts the step and the last one that completes it.
  const started = run.find((v) => v.started && !v.completed)!;
  const completed = run.filter((v) => v.completed).at(-1)!;
  return {
    // `inputs` (the digests of the vertices a step reads) is the one field left out: Buildyard's
    // events carry no graph edges yet, so its vertices have none (the field is then omitted).
    keys: [Object.keys(started ?? {}), Object.keys(completed)].map((k) => k.filter((f) => f !== 'inputs')),
    name: run[0].name,
    stdout: text(1),
    stderr: text(2),
    logKeys: [...new Set(logs.flatMap((l) => Object.keys(l)))],
  };
}

test('rawjson carries the RUN step as buildctl\'s SolveStatus does: fields, name, logs per stream, RFC 3339 times', { skip }, async () => {
  const base = cluster.busybox.reference;
  const trace = join(work, 'trace.json');
  await new Promise<void>((res, rej) => execFile(tools.paths.buildctl, ['--addr', buildkitd.addr, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${context}`, '--local', `dockerfile=${context}`,
    '--opt', `build-arg:BASE=${base}`, '--trace', trace, '--progress', 'plain'], { maxBuffer: 64 << 20 }, (err, _o, stderr) => (err ? rej(new Error(stderr)) : res())));
  const reference = readFileSync(trace, 'utf8').trim().split('\n').map((l) => tagged(JSON.parse(l)) as Json);

  const run = spawnSync(process.execPath, appCommand('cli', 'build', '--progress', 'rawjson', '--build-arg', `BASE=${base}`, context), {
    cwd: work, encoding: 'utf8', timeout: 180_000,
    env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token },
  });
  assert.equal(run.status, 0, run.stderr);
  const ours = run.stderr.trim().split('\n').map((l) => JSON.parse(l) as Json);
  for (const u of ours) assert.ok(Object.keys(u).every((k) => ['vertexes', 'statuses', 'logs', 'warnings'].includes(k)), JSON.stringify(u));

  const want = summary(reference);
  const got = summary(ours);
  assert.deepEqual(got, want);
});
