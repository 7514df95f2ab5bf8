// Issue 17 acceptance, side by side (continued from buildxCompare.test.ts): what `docker buildx`
// prints against the reference buildkitd and against a real cluster's BuildKit endpoint.
// `--progress plain` (vertex names, their order, CACHED/DONE/ERROR, a failed RUN's error lines),
// a git context's `-o type=local` tree, and `du`/`prune` (columns, exit status, reclaimed space).
// Durations, ids, digests and sizes differ by implementation, so those are normalised away; the
// rest must be the same.
//
// Both show each base image as "[internal] load metadata for IMAGE" and then as the FROM vertex
// "[stage 1/n] FROM IMAGE:TAG@sha256:..." (one per image and platform, named by the first stage on
// it) with its "resolve" line. Left out because Buildyard differs (issue 17): how a FROM vertex ends
// when a later build runs a step on an image buildkitd already holds (buildkitd: DONE, then CACHED
// once the step loads it; Buildyard pins the image while planning: DONE), which stage names a FROM
// vertex several stages share (buildkitd: any of them, Buildyard: the first), and the cache export
// vertex's name (buildkitd v0.11: "exporting content cache", upstream: "exporting cache to
// registry", as here; its phases are compared). du marks a record Shared when another record
// holds the same data: never on buildkitd's OCI worker, on Buildyard when two steps made the same
// layer (content-addressed, such as two steps that changed nothing).

// As buildkitd (and current BuildKit's dockerui, which gives a git or http context no exclude
// patterns), the BuildKit endpoint applies no .dockerignore to a git context; `buildyard build
// <git URL>` still does (gitContext.test.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { referenceTools, startGitServer } from '@buildyard/testkit';
import { startComparison, tree, type Comparison, type Run } from './buildxComparison.js';
import { startOutside } from './security/outsideNetwork.js';

const tools = referenceTools('docker-buildx', 'buildkitd', 'buildctl');
const skip = tools.missing ?? false;
const BUILDERS = ['reference', 'ours'] as const;
type Builder = typeof BUILDERS[number];
let c: Comparison;

before(async () => { if (!skip) c = await startComparison(tools.paths['docker-buildx']!, 1); });
after(async () => { await c?.stop(); });

/** A context folder holding `dockerfile`. */
function project(name: string, dockerfile: string[]): string {
  const dir = join(c.work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), dockerfile.join('\n') + '\n');
  writeFileSync(join(dir, 'app.txt'), `${name}\n`);
  return dir;
}

/**
 * Plain progress reduced to what both implementations must agree on: each vertex (by name, in
 * the order its header first appears) with how it ended (CACHED, DONE, ERROR, or nothing).
 * Sizes, times and digests in names are normalised.
 */
function vertices(stderr: string): string[] {
  const byId = new Map<string, { name: string; end: string }>();
  for (const m of stderr.matchAll(/^#(\d+) (.*)$/gm)) {
    const [, id, rest] = m as unknown as [string, string, string];
    if (id === '0') continue; // buildx v0.10 prints early logs as #0 (see buildkitCacheInterop.test.ts)
    const v = byId.get(id);
    if (!v) { byId.set(id, { name: normalise(rest), end: '' }); continue; }
    if (rest === 'CACHED') v.end = 'CACHED';
    else if (/^DONE [\d.]+s$/.test(rest)) v.end = 'DONE';
    else if (/^ERROR\b/.test(rest)) v.end = 'ERROR';
  }
  return [...byId.values()].map((v) => `${v.name} ${v.end}`.trim());
}

function normalise(line: string): string {
  return line
    .replace(/sha256:[0-9a-f]{64}/g, 'sha256:<digest>')
    .replace(/\b\d+(\.\d+)?(B|kB|KB|MB|GB)\b/g, '<size>')
    .replace(/\b\d+(\.\d+)?s\b/g, '<time>');
}

/** The same buildx build (plain progress, no output) on both builders. */
async function bothBuild(dir: string, ...flags: string[]): Promise<Record<Builder, Run>> {
  const runs = {} as Record<Builder, Run>;
  for (const b of BUILDERS) runs[b] = await c.buildx('--builder', b, 'build', '--progress', 'plain', ...flags, dir);
  return runs;
}

const isBaseImage = (v: string): boolean => /^\[[^\]]*\b1\/(\d+|<n>)\] FROM /.test(v);
/** FROM vertices without the stage that names them (see the file comment). */
const anyStage = (vs: string[]): string[] => vs.map((v) => (isBaseImage(v) ? v.replace(/^\[(.*?)\S+ 1\/\d+\] /, '[$1<stage> 1/<n>] ') : v));
/** FROM vertices without how they ended (see the file comment: buildkitd's may end CACHED on a later build). */
const baseImageUnended = (vs: string[]): string[] => vs.map((v) => (isBaseImage(v) ? v.replace(/ (DONE|CACHED)$/, '') : v));
/** The "resolve IMAGE@sha256:..." lines under FROM vertices (time left out). */
const resolveLines = (stderr: string): string[] => [...stderr.matchAll(/^#\d+ (resolve \S+@sha256:[0-9a-f]{64})( [\d.]+s)? done$/gm)].map((m) => normalise(m[1]!));

/** Vertices of the Dockerfile's steps (not "[internal]" ones), in the order they appeared. */
const steps = (vs: string[]): string[] => vs.filter((v) => !v.startsWith('[internal]'));

test('buildx --progress plain: the same vertices, in the same order, DONE then CACHED on the second build', { skip, timeout: 300_000 }, async () => {
  const dir = project('plain', [
    `FROM ${c.cluster.busybox.reference} AS build`,
    'COPY app.txt /src/app.txt',
    'RUN mkdir -p /out && cp /src/app.txt /out/app.txt && echo built',
    `FROM ${c.cluster.busybox.reference}`,
    'COPY --from=build /out /out',
    'RUN cat /out/app.txt',
  ]);
  const first = await bothBuild(dir);
  const second = await bothBuild(dir);
  for (const b of BUILDERS) {
    assert.equal(first[b].code, 0, `${b}:\n${first[b].stderr}`);
    assert.equal(second[b].code, 0, `${b}:\n${second[b].stderr}`);
  }
  const [ref1, ours1, ref2, ours2] = [first.reference, first.ours, second.reference, second.ours].map((r) => anyStage(vertices(r.stderr)));
  // buildkitd loads the Dockerfile and the .dockerignore concurrently: their order is not fixed.
  assert.deepEqual([...ours1!].sort(), [...ref1!].sort());
  assert.deepEqual([...ours2!].sort(), [...ref2!].sort());
  // Each step waits for the one before it, so the first build's headers come in the chain's
  // order; buildkitd reports the second build's cache hits in no fixed order.
  assert.deepEqual(steps(ours1!), steps(ref1!));
  // What both say, so that agreeing on nothing cannot pass.
  // Buildyard names the shared FROM vertex by the first stage on the image.
  assert.ok(vertices(first.ours.stderr).includes(`[build 1/3] FROM ${c.cluster.busybox.reference}@sha256:<digest> DONE`), first.ours.stderr);
  assert.deepEqual(steps(ref1!), [
    `[<stage> 1/<n>] FROM ${c.cluster.busybox.reference}@sha256:<digest> DONE`,
    '[build 2/3] COPY app.txt /src/app.txt DONE',
    '[build 3/3] RUN mkdir -p /out && cp /src/app.txt /out/app.txt && echo built DONE',
    '[stage-1 2/3] COPY --from=build /out /out DONE',
    '[stage-1 3/3] RUN cat /out/app.txt DONE',
  ]);
  // The FROM vertex resolves its image again (DONE); every step is a cache hit.
  assert.deepEqual(steps(ref2!).sort(), steps(ref1!).map((v) => (isBaseImage(v) ? v : v.replace(/DONE$/, 'CACHED'))).sort());
  // The FROM vertex's "resolve" line, on both builds.
  for (const r of [first, second]) {
    assert.deepEqual(resolveLines(r.reference.stderr), [`resolve ${c.cluster.busybox.reference}@sha256:<digest>`], r.reference.stderr);
    assert.deepEqual(resolveLines(r.ours.stderr), resolveLines(r.reference.stderr), r.ours.stderr);
  }
  assert.ok(ref1!.includes('[internal] load build definition from Dockerfile DONE') && ref1!.includes('[internal] load build context DONE'), ref1!.join('\n'));
  // One image config load for the one base image and platform, on each build.
  for (const vs of [ours1!, ours2!]) assert.equal(vs.filter((v) => v === `[internal] load metadata for ${c.cluster.busybox.reference} DONE`).length, 1, vs.join('\n'));
  // The RUN's output, as a log line of its vertex.
  for (const b of BUILDERS) assert.match(first[b].stderr, /^#\d+ [\d.]+ plain$/m, `${b}:\n${first[b].stderr}`);
});

/** A failed build's lines that both must print alike: the step's ERROR, the excerpt's header and log, the final error. */
function failure(stderr: string): string[] {
  const lines = stderr.split('\n');
  const from = lines.findIndex((l) => l === '------');
  return [
    ...lines.filter((l) => /^#\d+ ERROR: /.test(l)).map((l) => l.replace(/^#\d+/, '#N')),
    // buildx v0.10 prefixes the excerpt's log lines with "#0" when they came before the vertex
    // header (see buildkitCacheInterop.test.ts): the vertex number and the time are left out.
    ...lines.slice(from, lines.indexOf('------', from + 1) + 1).map((l) => l.replace(/^#\d+ [\d.]+ /, '#N T ')),
    ...lines.filter((l) => l.startsWith('ERROR: failed to solve:')),
  ];
}

/**
 * The Dockerfile excerpt buildx prints under a failed build's error ("Dockerfile:N", the lines
 * between two dashed rules, ">>>" at the failing ones), built from the error's errdefs.Source.
 */
function excerpt(stderr: string): string[] {
  const lines = stderr.split('\n');
  const from = lines.findIndex((l) => /^Dockerfile:\d+(-\d+)?$/.test(l));
  if (from < 0) return [];
  return lines.slice(from, lines.indexOf('--------------------', from + 2) + 1);
}

test('buildx --progress plain of a failing RUN: the same vertices, ERROR line, log excerpt and final error; exit status 1', { skip, timeout: 300_000 }, async () => {
  const dir = project('failing', [
    `FROM ${c.cluster.busybox.reference}`,
    'COPY app.txt /app.txt',
    'RUN echo about to fail && exit 3',
    'RUN echo never',
  ]);
  const runs = await bothBuild(dir);
  for (const b of BUILDERS) assert.equal(runs[b].code, 1, `${b}:\n${runs[b].stderr}`);
  const expected = [
    '#N ERROR: process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3',
    '------',
    ' > [3/4] RUN echo about to fail && exit 3:',
    '#N T about to fail',
    '------',
    'ERROR: failed to solve: process "/bin/sh -c echo about to fail && exit 3" did not complete successfully: exit code: 3',
  ];
  assert.deepEqual(failure(runs.reference.stderr), expected, runs.reference.stderr);
  assert.deepEqual(failure(runs.ours.stderr), expected, runs.ours.stderr);
  const [ref, ours] = [runs.reference, runs.ours].map((r) => steps(baseImageUnended(vertices(r.stderr))));
  assert.deepEqual(ours, ref);
  assert.deepEqual(ref, [`[1/4] FROM ${c.cluster.busybox.reference}@sha256:<digest>`, '[2/4] COPY app.txt /app.txt DONE', '[3/4] RUN echo about to fail && exit 3 ERROR']);
  assert.deepEqual(excerpt(runs.reference.stderr), [
    'Dockerfile:3',
    '--------------------',
    `   1 |     FROM ${c.cluster.busybox.reference}`,
    '   2 |     COPY app.txt /app.txt',
    '   3 | >>> RUN echo about to fail && exit 3',
    '   4 |     RUN echo never',
    '   5 |     ',
    '--------------------',
  ], runs.reference.stderr);
  assert.deepEqual(excerpt(runs.ours.stderr), excerpt(runs.reference.stderr), runs.ours.stderr);
});

test('buildx of a failing multi-line RUN, a failing heredoc RUN and an unknown instruction: the same Dockerfile excerpt as buildkitd', { skip, timeout: 300_000 }, async () => {
  const multi = await bothBuild(project('failing-multiline', [
    `FROM ${c.cluster.busybox.reference}`,
    'RUN echo one && \\',
    '    exit 4',
    'RUN echo never',
  ]));
  const heredoc = await bothBuild(project('failing-heredoc', [
    `FROM ${c.cluster.busybox.reference}`,
    'RUN <<EOF',
    'echo one',
    'exit 5',
    'EOF',
    'RUN echo never',
  ]));
  const unknown = await bothBuild(project('unknown-instruction', [
    `FROM ${c.cluster.busybox.reference}`,
    'FOO bar',
  ]));
  for (const runs of [multi, heredoc, unknown]) {
    for (const b of BUILDERS) assert.equal(runs[b].code, 1, `${b}:\n${runs[b].stderr}`);
    assert.notDeepEqual(excerpt(runs.reference.stderr), [], runs.reference.stderr);
    assert.deepEqual(excerpt(runs.ours.stderr), excerpt(runs.reference.stderr), `${runs.reference.stderr}\n----- ours:\n${runs.ours.stderr}`);
  }
  assert.deepEqual(excerpt(multi.reference.stderr).slice(0, 1), ['Dockerfile:2']);
  // The whole heredoc is marked, up to its terminator.
  assert.deepEqual(excerpt(heredoc.reference.stderr).filter((l) => l.includes('>>>')), ['   2 | >>> RUN <<EOF', '   3 | >>> echo one', '   4 | >>> exit 5', '   5 | >>> EOF']);
});

test('buildx build <git URL> -o type=local: the same tree as on buildkitd', { skip: skip || (process.getuid?.() === 0 ? false : 'needs root (a network namespace)'), timeout: 300_000 }, async (t) => {
  // Buildyard fetches git contexts only from where builds may reach (not loopback): a git
  // server in a namespace of its own, which buildkitd (host network) reaches as well.
  const outside = await startOutside();
  t.after(() => outside.stop());
  const git = await startGitServer({ host: outside.web, netns: outside.ns });
  t.after(() => git.stop());
  git.commit('app', [{ files: {
    'README': 'root\n',
    'app/Dockerfile': [
      `FROM ${c.cluster.busybox.reference} AS build`,
      'COPY . /ctx',
      'RUN mkdir -p /out && ls -a /ctx > /out/listing && cat /ctx/a.txt > /out/a.txt',
      'FROM scratch',
      'COPY --from=build /out /',
      'COPY . /ctx/',
      '',
    ].join('\n'),
    // Applied by neither: a git context gets no exclude patterns (see the file comment).
    'app/.dockerignore': 'ignored.txt\nsub\n', 'app/ignored.txt': 'x\n',
    'app/a.txt': 'from git\n', 'app/sub/b.txt': 'b\n',
  }, tag: 'v1' }]);
  const url = `http://${outside.web}:${new URL(git.http).port}/app.git#v1:app`;
  const trees = {} as Record<Builder, string[]>;
  for (const b of BUILDERS) {
    const dest = join(c.work, `git-${b}`);
    const run = await c.buildx('--builder', b, 'build', '--progress', 'plain', '--no-cache', '-o', `type=local,dest=${dest}`, url);
    assert.equal(run.code, 0, `${b}:\n${run.stderr}`);
    assert.match(run.stderr, /\[internal\] load git source http:\/\//, `${b}:\n${run.stderr}`);
    trees[b] = tree(dest);
  }
  assert.deepEqual(trees.ours, trees.reference);
  assert.deepEqual(trees.reference.map((l) => l.split(' ')[0]), ['a.txt', 'ctx/', 'ctx/.dockerignore', 'ctx/Dockerfile', 'ctx/a.txt', 'ctx/ignored.txt', 'ctx/sub/', 'ctx/sub/b.txt', 'listing']);
});

/**
 * The status lines under the cache export vertex ("exporting content cache" in buildkitd v0.11,
 * "exporting cache to registry" upstream and here), each once, in the order they first appear,
 * without their time and "done"; and those printed with "done".
 */
function cacheExportLines(stderr: string): { lines: string[]; done: Set<string> } {
  const id = /^#(\d+) exporting (?:content cache|cache to registry)$/m.exec(stderr)?.[1];
  const all = id ? [...stderr.matchAll(new RegExp(`^#${id} (.*)$`, 'gm'))].map((m) => m[1]!).filter((l) => !/^(exporting |DONE |ERROR|CACHED)/.test(l)) : [];
  const bare = (l: string) => l.replace(/( [\d.]+s)? done$/, '');
  return { lines: [...new Set(all.map(bare))], done: new Set(all.filter((l) => / done$/.test(l)).map(bare)) };
}

test('buildx --cache-to type=registry: the same phases under the cache export vertex, a line per layer written', { skip, timeout: 300_000 }, async () => {
  const dir = project('cache-export', [`FROM ${c.cluster.busybox.reference}`, 'COPY app.txt /app.txt', 'RUN echo exported > /exported']);
  const runs = {} as Record<Builder, Run>;
  for (const b of BUILDERS) {
    runs[b] = await c.buildx('--builder', b, 'build', '--progress', 'plain', '--cache-to', `type=registry,ref=${c.cluster.registry.host}/cache/export-${b}:1,mode=max,registry.insecure=true`, dir);
    assert.equal(runs[b].code, 0, `${b}:\n${runs[b].stderr}`);
  }
  // v0.11 says "writing manifest", upstream (and Buildyard) "writing cache manifest".
  const kinds = (lines: string[]) => [...new Set(lines.map((l) => l.replace(/ sha256:[0-9a-f]{64}$/, '').replace(/^writing cache manifest$/, 'writing manifest')))];
  const [ref, ours] = [runs.reference, runs.ours].map((r) => cacheExportLines(r.stderr));
  assert.deepEqual(kinds(ref!.lines), ['preparing build cache for export', 'writing layer', 'writing config', 'writing manifest'], runs.reference.stderr);
  assert.deepEqual(kinds(ours!.lines), kinds(ref!.lines), runs.ours.stderr);
  // A line per layer written: at least the COPY's and the RUN's (buildkitd also writes the base image's).
  assert.ok(ours!.lines.filter((l) => /^writing layer sha256:[0-9a-f]{64}$/.test(l)).length >= 2, runs.ours.stderr);
  // Every phase ended ("done"), as each of buildkitd's.
  for (const r of [ref!, ours!]) assert.deepEqual(r.lines.filter((l) => !r.done.has(l)), [], runs.ours.stderr);
});

/** buildx's table: the header's columns, each row's cell count, and the summary lines' labels (sizes and ids left out). */
function table(stdout: string): { header: string[]; rows: number[]; summary: string[]; total: number } {
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const cells = (l: string) => l.split(/\t+/).map((c) => c.trim());
  const isSummary = (l: string) => /^[A-Z][a-z]+:\t/.test(l);
  const header = lines[0]?.startsWith('ID\t') ? cells(lines[0]) : [];
  const totalLine = lines.find((l) => l.startsWith('Total:'));
  assert.ok(totalLine, stdout);
  return {
    header,
    rows: lines.slice(header.length ? 1 : 0).filter((l) => !isSummary(l)).map((l) => cells(l).length),
    summary: lines.filter(isSummary).map((l) => l.split(':')[0]!),
    total: bytes(cells(totalLine).at(-1)!),
  };
}

/** go-units' HumanSize (decimal units, as buildx prints them) back to bytes. */
function bytes(size: string): number {
  const m = /^([\d.]+)(B|kB|MB|GB|TB)\*?$/.exec(size);
  assert.ok(m, `a size: ${size}`);
  return Number(m[1]) * 1000 ** ['B', 'kB', 'MB', 'GB', 'TB'].indexOf(m[2]!);
}

test('buildx du and prune --all --force: the same columns and exit status; both reclaim space and du reports less after', { skip, timeout: 300_000 }, async () => {
  // Only this build's records in each cache: an empty cache, then two steps with layers of their own.
  for (const b of BUILDERS) assert.equal((await c.buildx('--builder', b, 'prune', '--all', '--force')).code, 0);
  const dir = project('du', [`FROM ${c.cluster.busybox.reference}`, 'COPY app.txt /app.txt', 'RUN echo cached > /cached']);
  const built = await bothBuild(dir);
  for (const b of BUILDERS) assert.equal(built[b].code, 0, `${b}:\n${built[b].stderr}`);
  const shapes = {} as Record<Builder, { du: ReturnType<typeof table>; prune: ReturnType<typeof table>; after: ReturnType<typeof table> }>;
  for (const b of BUILDERS) {
    const du = await c.buildx('--builder', b, 'du');
    assert.equal(du.code, 0, `${b}:\n${du.stderr}`);
    const prune = await c.buildx('--builder', b, 'prune', '--all', '--force');
    assert.equal(prune.code, 0, `${b}:\n${prune.stderr}`);
    const after = await c.buildx('--builder', b, 'du');
    assert.equal(after.code, 0, `${b}:\n${after.stderr}`);
    shapes[b] = { du: table(du.stdout), prune: table(prune.stdout), after: table(after.stdout) };
  }
  const ref = shapes.reference;
  const ours = shapes.ours;
  assert.deepEqual(ref.du.header, ['ID', 'RECLAIMABLE', 'SIZE', 'LAST ACCESSED']);
  assert.deepEqual(ours.du.header, ref.du.header);
  assert.deepEqual(ours.prune.header, ref.prune.header);
  // Every row has the four cells (an empty LAST ACCESSED is still a cell: the tab is printed).
  for (const s of [ref.du, ours.du, ref.prune, ours.prune]) {
    assert.ok(s.rows.length > 0);
    assert.ok(s.rows.every((n) => n === 4), JSON.stringify(s.rows));
  }
  // No record holds data another one holds too: none is Shared, so buildx prints no "Shared:"/"Private:" lines.
  assert.deepEqual(ref.du.summary, ['Reclaimable', 'Total']);
  assert.deepEqual(ours.du.summary, ref.du.summary);
  assert.deepEqual(ours.prune.summary, ref.prune.summary);
  assert.deepEqual(ref.prune.summary, ['Total']);
  for (const b of BUILDERS) {
    assert.ok(shapes[b].prune.total > 0, `${b} reclaimed nothing`);
    assert.ok(shapes[b].after.total < shapes[b].du.total, `${b}: du after prune ${shapes[b].after.total} is not less than before ${shapes[b].du.total}`);
  }
});
