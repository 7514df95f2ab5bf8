// `buildyard history ls | inspect | logs | rm` (issue 20) through the real CLI against a real
// cluster: a successful and a failed build are listed, inspected and replayed as buildx shows
// them; another tenant sees, inspects and removes none of them; rm drops record and logs; the
// configured retention is what Redis keeps them for. Also `--progress rawjson` of a real build.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { startCluster, type Cluster, appCommand, testWorkDir } from '@buildyard/testkit';

const RETENTION_MS = 2 * 3600 * 1000;
let cluster: Cluster;
let work: string;
let context: string;
let okId: string;
let failedId: string;

function cli(args: string[], token = cluster.token): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, appCommand('cli', ...args), {
    cwd: work, encoding: 'utf8', timeout: 180_000,
    env: { ...process.env, XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: token },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

interface LsLine { ref: string; name: string; status: string; total_steps: number; completed_steps: number; cached_steps: number; created_at: string; completed_at?: string }
const lsJson = (token?: string): LsLine[] => {
  const run = cli(['history', 'ls', '--format', 'json'], token);
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as LsLine);
};
const idOf = (ref: string) => ref.split('/').at(-1)!;

before(async () => {
  cluster = await startCluster({ workers: 1, tenants: ['mallory', 'carol', 'dave'], env: { BUILDYARD_HISTORY_RETENTION_MS: String(RETENTION_MS) } });
  work = testWorkDir('buildyard-history-e2e-');
  context = mkdtempSync(join(work, 'app-'));
  writeFileSync(join(context, 'Dockerfile'), 'ARG BASE\nFROM ${BASE}\nRUN echo hello-from-history\nCOPY hello /hello\n');
  writeFileSync(join(context, 'fail.Dockerfile'), `ARG BASE\nFROM \${BASE} AS broken\nRUN echo about-to-fail-${process.pid} && exit 3\n`);
  writeFileSync(join(context, 'hello'), `hello ${process.pid}\n`);
  const ok = cli(['build', '--progress', 'plain', '--build-arg', `BASE=${cluster.busybox.reference}`, '--metadata-file', join(work, 'md.json'), context]);
  assert.equal(ok.status, 0, ok.stderr);
  const failed = cli(['build', '--progress', 'plain', '--build-arg', `BASE=${cluster.busybox.reference}`, '-f', join(context, 'fail.Dockerfile'), '--target', 'broken', context]);
  assert.equal(failed.status, 1, failed.stderr);
  const records = lsJson();
  assert.equal(records.length, 2, JSON.stringify(records));
  [failedId, okId] = records.map((r) => idOf(r.ref));
});
after(async () => { await cluster?.stop(); });

test('history ls: buildx\'s columns and JSON lines, newest first', () => {
  const table = cli(['history', 'ls']);
  assert.equal(table.status, 0, table.stderr);
  const lines = table.stdout.trim().split('\n');
  assert.match(lines[0], /^BUILD ID\s+NAME\s+STATUS\s+CREATED AT\s+DURATION$/);
  assert.match(lines[1], new RegExp(`^${failedId}\\s+app-\\S+/fail\\.Dockerfile \\(broken\\)\\s+Error\\s+\\S.* ago\\s+\\d+\\.\\ds$`));
  assert.match(lines[2], new RegExp(`^${okId}\\s+app-\\S+\\s+Completed\\s+`));
  const [failed, ok] = lsJson();
  assert.equal(ok.status, 'Completed');
  assert.equal(failed.status, 'Error');
  assert.equal(ok.ref, `${cluster.frontend}/${cluster.address}/${okId}`);
  // The RUN and the COPY (a FROM is no step here: its image is resolved when the build is planned).
  assert.deepEqual([ok.total_steps, ok.completed_steps], [2, 2]);
  assert.deepEqual([failed.total_steps, failed.completed_steps], [1, 1], 'the failed RUN, read from the build\'s events');
  assert.ok(ok.completed_at && Date.parse(ok.completed_at) >= Date.parse(ok.created_at));
});

test('history inspect: context, Dockerfile, target, platforms, duration, steps, image digests, the error; ^N and id prefixes as refs', () => {
  const latest = cli(['history', 'inspect']);
  assert.equal(latest.status, 0, latest.stderr);
  assert.match(latest.stdout, new RegExp(`^Ref:\\t+\\S+/${failedId}$`, 'm'), 'the latest build, named by its ref');
  assert.match(latest.stdout, /^Target:\t+broken$/m);
  assert.match(latest.stdout, /^Dockerfile:\t+\S*fail\.Dockerfile$/m);
  assert.match(latest.stdout, /^Error:\t+.*exit code: 3/m);
  assert.match(latest.stdout, /^Build Steps:\t+1\/1 \(0% cached\)$/m, 'the failed RUN, read from the build\'s events');
  assert.match(latest.stdout, /^Platforms:\t+linux\/(amd64|arm64)$/m, 'the builder\'s platform, as the build ran');

  const ok = cli(['history', 'inspect', '^1']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^Context:\\t+${context.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.match(ok.stdout, /^Platforms:\t+linux\/amd64$/m);
  assert.match(ok.stdout, /^Duration:\t+\d+\.\ds$/m);
  assert.match(ok.stdout, /^Build Steps:\t+2\/2 \(\d+% cached\)$/m);
  assert.match(ok.stdout, /^sha256:[0-9a-f]{64}\tlinux\/amd64$/m, 'the image\'s manifest digest');
  assert.match(ok.stdout, new RegExp(`^Print build logs: buildyard history logs ${okId}$`, 'm'));

  const json = cli(['history', 'inspect', okId.slice(0, 8), '--format', 'json']);
  assert.equal(json.status, 0, json.stderr);
  const doc = JSON.parse(json.stdout) as { Status: string; NumTotalSteps: number; Images: { Digest: string }[]; BuildArgs: { Name: string }[] };
  assert.equal(doc.Status, 'completed');
  assert.equal(doc.NumTotalSteps, 2);
  assert.match(doc.Images[0].Digest, /^sha256:/);
  assert.deepEqual(doc.BuildArgs.map((a) => a.Name), ['BASE']);

  const missing = cli(['history', 'inspect', 'no-such-build']);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^ERROR: history inspect: .*no build found for ref "no-such-build"/);
});

test('history logs replays the build in plain progress form; rawjson is BuildKit\'s SolveStatus', () => {
  const plain = cli(['history', 'logs', okId]);
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stderr, /^#\d+ \[2\/3\] RUN echo hello-from-history/m);
  assert.match(plain.stderr, /^#\d+ \d+\.\d+ hello-from-history$/m);
  assert.match(plain.stderr, /^#\d+ DONE \d+\.\ds$/m);
  const failed = cli(['history', 'logs', '^0']);
  assert.equal(failed.status, 0, failed.stderr);
  assert.match(failed.stderr, new RegExp(`^#\\d+ \\d+\\.\\d+ about-to-fail-${process.pid}$`, 'm'));
  assert.match(failed.stderr, /^#\d+ ERROR: .*exit code: 3/m);

  const raw = cli(['history', 'logs', '--progress', 'rawjson', okId]);
  assert.equal(raw.status, 0, raw.stderr);
  const updates = raw.stderr.trim().split('\n').map((l) => JSON.parse(l) as { vertexes?: { name: string; completed?: string }[]; logs?: { data: string }[] });
  assert.ok(updates.some((u) => u.vertexes?.some((v) => v.name === '[2/3] RUN echo hello-from-history' && v.completed)));
  assert.ok(updates.some((u) => u.logs?.some((l) => Buffer.from(l.data, 'base64').toString().includes('hello-from-history'))));
});

test('build --progress rawjson prints one SolveStatus object per update, as buildctl --progress rawjson', () => {
  // Another tenant builds, so the default tenant's history is what before() made of it in any test order.
  const run = cli(['build', '--progress', 'rawjson', '--no-cache', '--build-arg', `BASE=${cluster.busybox.reference}`, context], cluster.tokens.dave);
  assert.equal(run.status, 0, run.stderr);
  const updates = run.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown[]>);
  for (const u of updates) {
    assert.ok(Object.keys(u).length > 0 && Object.keys(u).every((k) => ['vertexes', 'statuses', 'logs', 'warnings'].includes(k)), JSON.stringify(u));
  }
  const vertexes = updates.flatMap((u) => (u.vertexes ?? []) as { digest: string; name: string; started?: string; completed?: string }[]);
  const run2 = vertexes.filter((v) => v.name === '[2/3] RUN echo hello-from-history');
  assert.ok(run2.length >= 2 && run2.every((v) => /^sha256:[0-9a-f]{64}$/.test(v.digest)), JSON.stringify(run2));
  assert.ok(run2.some((v) => v.completed && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v.completed)));
  const logs = updates.flatMap((u) => (u.logs ?? []) as { vertex: string; stream: number; data: string; timestamp: string }[]);
  assert.ok(logs.some((l) => l.vertex === run2[0].digest && l.stream === 1 && Buffer.from(l.data, 'base64').toString() === 'hello-from-history\n'), JSON.stringify(logs));
});

test('attacker: another tenant lists, inspects, replays and removes none of these builds', () => {
  const mallory = cluster.tokens.mallory;
  assert.deepEqual(lsJson(mallory).filter((r) => [okId, failedId].includes(idOf(r.ref))), []);
  for (const ref of [okId, okId.slice(0, 8), failedId]) {
    for (const args of [['history', 'inspect', ref], ['history', 'logs', ref], ['history', 'rm', ref]]) {
      const run = cli(args, mallory);
      assert.equal(run.status, 1, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, new RegExp(`no build found for ref "${ref}"`));
    }
  }
  assert.equal(cli(['history', 'rm', '--all'], mallory).status, 0);
  assert.deepEqual(lsJson().map((r) => idOf(r.ref)).filter((id) => [okId, failedId].includes(id)), [failedId, okId], 'both records are still there');
  assert.equal(cli(['history', 'logs', okId]).status, 0, 'and so are their logs');
});

test('records and logs are kept for history.retentionMs; rm removes record and logs; rm needs a ref or --all', async () => {
  // Carol's own build: removing it changes nothing other tests look at.
  const carol = cluster.tokens.carol;
  const built = cli(['build', '-q', '--build-arg', `BASE=${cluster.busybox.reference}`, context], carol);
  assert.equal(built.status, 0, built.stderr);
  const [mine] = lsJson(carol);
  const id = idOf(mine.ref);
  const redis = new Redis(cluster.redis.url);
  try {
    for (const key of [DEFAULT_KEYS.build(id), DEFAULT_KEYS.progress(id)]) {
      const ttl = await redis.pttl(key);
      assert.ok(ttl > RETENTION_MS - 600_000 && ttl <= RETENTION_MS, `${key} TTL ${ttl}`);
    }
    const usage = cli(['history', 'rm'], carol);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /name at least one build/);
    const rm = cli(['history', 'rm', id], carol);
    assert.equal(rm.status, 0, rm.stderr);
    assert.equal(await redis.exists(DEFAULT_KEYS.build(id), DEFAULT_KEYS.progress(id)), 0, 'record and stream are gone');
    assert.equal(await redis.zscore(DEFAULT_KEYS.builds, id), null);
    assert.deepEqual(lsJson(carol), []);
    const gone = cli(['history', 'logs', id], carol);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /no build found/);
  } finally {
    redis.disconnect();
  }
});
