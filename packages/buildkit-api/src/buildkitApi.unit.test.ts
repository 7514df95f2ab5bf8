import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildkit } from '@buildyard/proto';
import { goMode, unixMode } from './fileSync.js';
import { checkSyntaxDirective, dockerfileAttrs, outputsOf, sessionCaches, toBuildyardRequest, UnsupportedRequest } from './solveRequest.js';
import { StatusTranslator } from '@buildyard/progress';
import { platformMessage } from './workers.js';

const solve = (p: Partial<buildkit.SolveRequest>) => buildkit.SolveRequest.fromPartial(p);

test('Go FileModes from fsutil become st_mode; devices, pipes and sockets are not context entries', () => {
  assert.equal(unixMode(0o644), 0o100644);
  assert.equal(unixMode(2 ** 31 + 0o755), 0o040755);
  assert.equal(unixMode(2 ** 27 + 0o777), 0o120777);
  assert.equal(unixMode(2 ** 23 + 0o755), 0o104755); // setuid
  assert.equal(unixMode(2 ** 26 + 0o600), undefined); // device
  assert.equal(unixMode(2 ** 25 + 0o600), undefined); // named pipe
  for (const mode of [0o100644, 0o040755, 0o120777, 0o104755, 0o041777]) assert.equal(unixMode(goMode(mode)), mode);
});

test('dockerfile.v0 attributes as buildctl and buildx send them', () => {
  const attrs = dockerfileAttrs(solve({
    Frontend: 'dockerfile.v0',
    FrontendAttrs: { platform: 'linux/amd64,linux/arm64', target: 'build', 'build-arg:BASE': 'busybox', 'label:a': 'b', filename: 'Dockerfile.dev', 'no-cache': '' },
  }));
  assert.deepEqual(attrs.platforms, ['linux/amd64', 'linux/arm64']);
  assert.equal(attrs.target, 'build');
  assert.deepEqual(attrs.buildArgs, { BASE: 'busybox' });
  assert.deepEqual(attrs.labels, { a: 'b' });
  assert.equal(attrs.filename, 'Dockerfile.dev');
  assert.equal(attrs.noCache, true);
  const some = dockerfileAttrs(solve({ Frontend: 'dockerfile.v0', FrontendAttrs: { 'no-cache': 'build,test' } }));
  assert.equal(some.noCache, false);
  assert.deepEqual(some.noCacheFilter, ['build', 'test']);
});

test('what is not a dockerfile.v0 build is refused with one line naming it', () => {
  assert.throws(() => dockerfileAttrs(solve({ Definition: { def: [Buffer.from('op')] } })), (e: Error) => e instanceof UnsupportedRequest && /raw LLB definitions are not supported/.test(e.message));
  assert.throws(() => dockerfileAttrs(solve({ Frontend: 'gateway.v0', FrontendAttrs: { source: 'x/y' } })), /frontend "gateway\.v0" is not supported/);
  assert.throws(() => outputsOf(solve({ Exporter: 'cacheonly', ExporterAttrs: {} })), /exporter "cacheonly" is not supported/);
  assert.deepEqual(outputsOf(solve({ Exporter: 'image', ExporterAttrs: { name: 'r/a:1', push: 'true' } })), [{ type: 'image', attrs: { name: 'r/a:1', push: 'true' } }]);
  assert.deepEqual(outputsOf(solve({ Exporters: [{ Type: 'image', Attrs: { name: 'r/a:1' } }] })), [{ type: 'image', attrs: { name: 'r/a:1' } }]);
});

test('# syntax= naming a frontend image is refused; docker/dockerfile:1 is the language built in', () => {
  checkSyntaxDirective('# syntax=docker/dockerfile:1\nFROM busybox\n');
  checkSyntaxDirective('# syntax=docker.io/docker/dockerfile:1.4\nFROM busybox\n');
  checkSyntaxDirective('FROM busybox\n# syntax=example.com/x:1\n'); // not a directive after the first instruction
  assert.throws(() => checkSyntaxDirective('# syntax=example.com/my/frontend:1\nFROM busybox\n'), /# syntax=example\.com\/my\/frontend:1: frontend images are not supported/);
  // The labs channel is the same language here (COPY --parents and --exclude are built in).
  for (const tag of ['1-labs', '1.7-labs', '1.4.3-labs', 'labs', 'latest']) checkSyntaxDirective(`# syntax=docker/dockerfile:${tag}\nFROM busybox\n`);
  assert.throws(() => checkSyntaxDirective('# syntax=docker/dockerfile-upstream:master\nFROM busybox\n'), UnsupportedRequest);
  // dockerui's BUILDKIT_SYNTAX build arg wins over the directive.
  assert.throws(() => checkSyntaxDirective('# syntax=docker/dockerfile:1\nFROM busybox\n', { BUILDKIT_SYNTAX: 'example.com/x' }), /BUILDKIT_SYNTAX=example\.com\/x: frontend images are not supported/);
  checkSyntaxDirective('# syntax=example.com/x\nFROM busybox\n', { BUILDKIT_SYNTAX: 'docker/dockerfile:1' });
});

test('status updates carry everything known of a vertex, whatever order events arrive in', () => {
  const t = new StatusTranslator(true);
  const v = { digest: 'sha256:1', name: '[build 2/3] RUN make', platform: 'linux/arm64', stage: 'build', step: 2, steps: 3, workerId: 'w1', emulated: true };
  // A log that overtakes its step's start waits for it.
  assert.equal(t.translate({ type: 'vertex.log', digest: 'sha256:1', stream: 1, data: Buffer.from('hi\n'), truncated: false, timestampMs: 5 }), undefined);
  const finished = t.translate({ type: 'vertex.finished', vertex: v, startedMs: 10, completedMs: 20, durationMs: 10, timestampMs: 20 })!;
  assert.equal(finished.vertexes[0].name, '[linux/arm64 build 2/3] RUN make');
  assert.equal(finished.logs.length, 1);
  const lateStart = t.translate({ type: 'vertex.started', vertex: v, startedMs: 10, timestampMs: 21 })!;
  assert.equal(lateStart.vertexes[0].completed?.getTime(), 20, 'a late start does not reopen a completed step');
  assert.equal(lateStart.vertexes[0].started?.getTime(), 10);
});

test('a failed step keeps the start it was first sent with, so buildctl sees its one run complete with the error', () => {
  const t = new StatusTranslator(false);
  const v = { digest: 'sha256:2', name: '[2/2] RUN exit 3', platform: 'linux/amd64', stage: '0', step: 2, steps: 2, workerId: 'w1', emulated: false };
  // The worker stamps the started event a millisecond after the start its error event carries.
  const start = t.translate({ type: 'vertex.started', vertex: v, startedMs: 101, timestampMs: 101 })!;
  const failed = t.translate({ type: 'vertex.error', vertex: v, startedMs: 100, completedMs: 100, error: 'exit code: 3', timestampMs: 102 })!;
  assert.equal(failed.vertexes[0].started?.getTime(), start.vertexes[0].started?.getTime());
  assert.equal(failed.vertexes[0].completed?.getTime(), 101, 'never completed before it started');
  assert.equal(failed.vertexes[0].error, 'exit code: 3');
});

test('the secret ids a Dockerfile\'s RUN mounts name: id, else the base name of the target', async () => {
  const { secretIds } = await import('./sessionSecrets.js');
  const ids = secretIds([
    'FROM busybox',
    'RUN --mount=type=secret,id=npmrc,target=/root/.npmrc cat /root/.npmrc',
    'RUN --mount=type=secret,target=/run/secrets/token --mount=type=cache,target=/cache true',
    'RUN --mount=type=bind,source=a,target=/b true',
  ].join('\n'), 'Dockerfile');
  assert.deepEqual(ids.sort(), ['npmrc', 'token']);
});

test('the export vertex opens after the relayed events, times each phase as a status, and ends with a failed phase\'s error', async () => {
  const { ExportVertex, StreamCursor } = await import('./exportVertex.js');
  const sent: buildkit.StatusResponse[] = [];
  const cursor = new StreamCursor();
  const v = new ExportVertex('ref1', 'exporting to image', (s) => sent.push(s), () => cursor.reach('5-1'));
  const layers = v.step('exporting layers', async () => 'images');
  await Promise.resolve();
  assert.equal(sent.length, 0, 'nothing is sent before the build\'s events up to the stream\'s end are relayed');
  cursor.advance('5-0');
  await Promise.resolve();
  assert.equal(sent.length, 0);
  cursor.advance('6-0');
  assert.equal(await layers, 'images');
  assert.equal(sent[0].vertexes[0].name, 'exporting to image');
  assert.ok(sent[0].vertexes[0].started && !sent[0].vertexes[0].completed);
  const [open, done] = sent.slice(1).map((s) => s.statuses[0]);
  assert.equal(open.ID, 'exporting layers');
  assert.equal(open.vertex, v.digest);
  assert.ok(open.started && !open.completed);
  assert.ok(done.completed);
  await assert.rejects(v.step('pushing layers', async () => { throw new Error('push refused'); }), /push refused/);
  v.complete();
  const last = sent.at(-1)!.vertexes[0];
  assert.ok(last.completed);
  assert.equal(last.error, 'push refused');
  assert.equal(sent.filter((s) => s.vertexes.length).length, 2, 'the vertex is announced once and completed once');
});

test('the registries a build needs credentials for: FROM images with ARGs expanded (not stage names), pushed names, registry caches', async () => {
  const { registryHosts } = await import('./sessionAuth.js');
  const df = 'ARG REG=ghcr.io\nARG BASE\nFROM $REG/org/base:1 AS build\nFROM build\nFROM ${BASE}\nFROM scratch\nFROM busybox\n';
  const hosts = registryHosts(df, 'Dockerfile', { BASE: '127.0.0.1:5000/lib/alpine' },
    [{ type: 'image', attrs: { name: 'quay.io/a/b:1,127.0.0.1:5000/a/b:2', push: 'true' } }, { type: 'local', attrs: { dest: 'out' } }],
    [{ type: 'registry', attrs: { ref: 'registry.example.com/cache:x' } }, { type: 'local', attrs: { src: 'dir' } }]);
  assert.deepEqual(hosts.sort(), ['127.0.0.1:5000', 'docker.io', 'ghcr.io', 'quay.io', 'registry.example.com']);
});

test('local caches move through the client\'s content stores: the frontend gets only tag and mode of an export and never a local import', () => {
  const digest = `sha256:${'a'.repeat(64)}`;
  const req = solve({ Cache: buildkit.CacheOptions.fromPartial({
    Exports: [{ Type: 'registry', Attrs: { ref: 'r/c:1' } }, { Type: 'local', Attrs: { dest: '/home/u/cache', mode: 'max', tag: 't1', compression: 'zstd' } }],
    Imports: [{ Type: 'local', Attrs: { src: '/home/u/cache', digest, tag: 't1' } }, { Type: 'registry', Attrs: { ref: 'r/c:1' } }],
  }) });
  assert.deepEqual(sessionCaches(req), {
    exports: [{ index: 1, dest: '/home/u/cache', store: 'local:/home/u/cache' }],
    imports: [{ store: 'local:/home/u/cache', src: '/home/u/cache', digest, tag: 't1' }],
  });
  const ours = toBuildyardRequest(req, dockerfileAttrs(solve({ Frontend: 'dockerfile.v0' })), 'ctx', Buffer.from('FROM scratch\n'), undefined);
  assert.deepEqual(ours.cacheTo.map((c) => [c.type, c.attrs]), [['registry', { ref: 'r/c:1' }], ['local', { mode: 'max', tag: 't1' }]]);
  assert.deepEqual(ours.cacheFrom.map((c) => c.type), ['registry']);
  // No dest, or an import the client did not resolve to a digest: refused in one line.
  assert.throws(() => sessionCaches(solve({ Cache: buildkit.CacheOptions.fromPartial({ Exports: [{ Type: 'local', Attrs: {} }] }) })), UnsupportedRequest);
  assert.throws(() => sessionCaches(solve({ Cache: buildkit.CacheOptions.fromPartial({ Imports: [{ Type: 'local', Attrs: { src: 'd' } }] }) })), /no cache digest/);
});

test('platformMessage gives BuildKit Platform messages through the one platform normaliser', () => {
  const fields = (p: string) => { const m = platformMessage(p); return [m.OS, m.Architecture, m.Variant]; };
  assert.deepEqual(fields('linux/amd64'), ['linux', 'amd64', '']);
  assert.deepEqual(fields('linux/arm/v7'), ['linux', 'arm', 'v7']);
  assert.deepEqual(fields('linux/riscv64'), ['linux', 'riscv64', '']);
  // Aliases a worker might report fold to the names buildx lists (arm64's default v8 is implicit).
  assert.deepEqual(fields('linux/aarch64/v8'), ['linux', 'arm64', '']);
  assert.deepEqual(fields('linux/x86_64'), ['linux', 'amd64', '']);
  assert.throws(() => platformMessage('linux/amd64/v2/extra'), /invalid platform "linux\/amd64\/v2\/extra"/);
});
