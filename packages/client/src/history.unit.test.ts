import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HistoryRecord } from '@buildyard/proto';
import {
  formatHistoryInspect, formatHistoryLs, historyContextName, historyDuration, historyInspectJson, historyName, humanDuration, tabwriter,
} from './history.js';

const T0 = Date.UTC(2026, 10, 30, 1, 0, 0);
const rec = (p: Partial<HistoryRecord>) => HistoryRecord.fromPartial({
  buildId: 'b1', status: 'succeeded', platforms: ['linux/amd64'], createdMs: T0, finishedMs: T0 + 4200, context: '/home/me/src/app', dockerfile: 'Dockerfile', ...p,
});

test('names as buildx\'s BuildName: the context\'s base name, a non-default Dockerfile, the target, BUILDKIT_BUILD_NAME', () => {
  assert.equal(historyName(rec({})), 'app');
  assert.equal(historyName(rec({ dockerfile: 'docker/api.Dockerfile', target: 'prod' })), 'app/api.Dockerfile (prod)');
  assert.equal(historyName(rec({ context: 'https://example.com/ctx.tar.gz' })), 'https://example.com/ctx.tar.gz');
  assert.equal(historyName(rec({ context: '-', dockerfile: '-', target: 'x' })), 'x');
  assert.equal(historyName(rec({ buildArgs: { BUILDKIT_BUILD_NAME: 'nightly' } })), 'nightly');
  assert.equal(historyContextName('.', '/home/me/src/app'), '/home/me/src/app');
  assert.equal(historyContextName('-', '/x'), '-');
  assert.equal(historyContextName('https://example.com/c.tar', '/x'), 'https://example.com/c.tar');
});

test('ages and durations as docker prints them', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(59_000), '59 seconds');
  assert.equal(humanDuration(90_000), 'About a minute');
  assert.equal(humanDuration(45 * 60_000), '45 minutes');
  assert.equal(humanDuration(70 * 60_000), 'About an hour');
  assert.equal(humanDuration(5 * 3_600_000), '5 hours');
  assert.equal(humanDuration(3 * 86_400_000), '3 days');
  assert.equal(historyDuration(4200), '4.2s');
  assert.equal(historyDuration(187_000), '3m  7s');
});

test('tabwriter pads with tabs to shared tab stops, as Go\'s text/tabwriter with padchar \\t', () => {
  assert.deepEqual(tabwriter([['Name:', 'app'], ['Dockerfile:', 'Dockerfile'], ['Build Steps:', '3/3']]), [
    'Name:\t\tapp', 'Dockerfile:\tDockerfile', 'Build Steps:\t3/3',
  ]);
});

test('history ls: buildx\'s columns (docker\'s table layout), running builds first then newest, and JSON lines with Go\'s sorted keys', () => {
  const now = T0 + 10 * 60_000;
  const records = [
    rec({ buildId: 'old', createdMs: T0 - 3_600_000, finishedMs: T0 - 3_600_000 + 187_000, status: 'failed', error: 'exit code: 1' }),
    rec({ buildId: 'new', createdMs: T0 }),
    rec({ buildId: 'live', createdMs: T0 + 5 * 60_000, finishedMs: 0, status: 'running', context: '/very/long/path/to/a/context/directory-with-a-very-long-name-indeed-yes' }),
  ];
  assert.deepEqual(formatHistoryLs(records, { builder: 'default', format: 'table', nowMs: now }), [
    'BUILD ID   NAME                                   STATUS      CREATED AT          DURATION',
    'live       ..y-with-a-very-long-name-indeed-yes   Running     5 minutes ago       5m  0s+',
    'new        app                                    Completed   10 minutes ago      4.2s',
    'old        app                                    Error       About an hour ago   3m  7s',
  ]);
  const json = formatHistoryLs(records, { builder: 'default', format: 'json', nowMs: now }).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(Object.keys(json[1]), ['cached_steps', 'completed_at', 'completed_steps', 'created_at', 'name', 'ref', 'status', 'total_steps']);
  assert.deepEqual(json[1], { cached_steps: 0, completed_at: '2026-11-30T01:00:04.2Z', completed_steps: 0, created_at: '2026-11-30T01:00:00Z', name: 'app', ref: 'default/default0/new', status: 'Completed', total_steps: 0 });
  assert.equal(json[0].completed_at, undefined);
  assert.throws(() => formatHistoryLs(records, { builder: 'd', format: 'yaml', nowMs: now }), /unknown --format "yaml": use table or json/);
});

test('history inspect: buildx\'s blocks (build, times and steps, config, build args), images and the logs hint; JSON as buildx\'s fields', () => {
  const r = rec({
    platforms: ['linux/amd64', 'linux/arm64'], target: 'prod', buildArgs: { VERSION: '1.2' }, stepsTotal: 4, stepsCompleted: 4, stepsCached: 1, noCache: true,
    digest: 'sha256:idx', images: [{ platform: 'linux/amd64', manifestDigest: 'sha256:m1', configDigest: 'sha256:c1' }, { platform: 'linux/arm64', manifestDigest: 'sha256:m2', configDigest: 'sha256:c2' }],
    pushed: ['127.0.0.1:5000/app:1'],
  });
  const lines = formatHistoryInspect(r, { builder: 'default', nowMs: T0 + 5000, refGiven: true });
  assert.equal(lines[0], 'Name:\t\tapp (prod)');
  assert.ok(lines.includes('Context:\t/home/me/src/app'));
  assert.ok(lines.includes('Platforms:\tlinux/amd64, linux/arm64'));
  assert.ok(lines.includes('Duration:\t4.2s'));
  assert.ok(lines.includes('Build Steps:\t4/4 (25% cached)'));
  assert.ok(lines.includes('No Cache:\ttrue'));
  assert.ok(lines.includes('BUILD ARG\tVALUE') && lines.includes('VERSION\t\t1.2'));
  assert.ok(lines.includes('sha256:idx\tindex') && lines.includes('sha256:m2\tlinux/arm64'));
  assert.equal(lines.at(-1), 'Print build logs: buildyard history logs b1');
  assert.ok(!lines.some((l) => l.startsWith('Ref:')), 'Ref only when inspecting the latest without a ref');

  const failed = formatHistoryInspect(rec({ status: 'failed', error: 'process "/bin/sh -c false" did not complete successfully: exit code: 1', stepsTotal: 2, stepsCompleted: 2 }), { builder: 'default', nowMs: T0, refGiven: false });
  assert.ok(failed.includes('Ref:\t\tdefault/default0/b1'));
  assert.ok(failed.includes('Error:\t\tprocess "/bin/sh -c false" did not complete successfully: exit code: 1'));
  const running = formatHistoryInspect(rec({ status: 'running', finishedMs: 0 }), { builder: 'default', nowMs: T0 + 2000, refGiven: true });
  assert.ok(running.includes('Duration:\t2.0s (running)'));

  const doc = JSON.parse(historyInspectJson(rec({ status: 'failed', error: 'boom', errorStep: '[2/2] RUN false' }), { builder: 'default', nowMs: T0 })) as Record<string, unknown>;
  assert.equal(doc.Status, 'failed');
  assert.deepEqual(doc.Error, { Message: 'boom', Name: '[2/2] RUN false' });
  assert.equal(doc.Duration, 4_200_000_000);
  assert.equal(doc.StartedAt, '2026-11-30T01:00:00Z');
});
