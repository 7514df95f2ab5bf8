// Named contexts in the planner, as BuildKit's dockerfile2llb resolves them: FROM, COPY --from
// and RUN --mount from= of a name read the named context first; a context named like a stage
// replaces the stage; `name::platform` wins over `name`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExecVertex, FileVertex } from '@buildyard/graph';
import { namedContextKey, parse, planBuild, type NamedContextSource, type PlanOptions, type ResolvedImage } from './index.js';

const D = (c: string) => 'sha256:' + c.repeat(64);
const entries = [{ path: 'f.txt', mode: 0o100644, size: 1, digest: D('c') }];

function plan(text: string, namedContexts: Record<string, NamedContextSource>, calls: string[] = [], platforms = ['linux/amd64']) {
  const resolveImage = async (ref: string): Promise<ResolvedImage> => {
    calls.push(ref);
    return { ref: `${ref}@${D('a')}`, digest: D('a'), config: { config: { Env: ['PATH=/bin'] } } };
  };
  const opts: PlanOptions = { platforms, buildPlatform: 'linux/amd64', resolveImage, namedContexts };
  return planBuild(parse(text), opts);
}

test('context keys are familiar references without :latest, optionally per platform', () => {
  assert.equal(namedContextKey('docker.io/library/alpine:latest'), 'alpine');
  assert.equal(namedContextKey('library/alpine'), 'alpine');
  assert.equal(namedContextKey('docker.io/foo/bar:1'), 'foo/bar:1');
  assert.equal(namedContextKey('localhost:5000/x'), 'localhost:5000/x');
  assert.equal(namedContextKey('alpine::linux/arm64'), 'alpine::linux/arm64');
  assert.equal(namedContextKey('Bad Name'), undefined);
});

test('FROM, COPY --from and RUN --mount from= read a docker-image:// named context instead of the image', async () => {
  const calls: string[] = [];
  const p = await plan('FROM alpine\nCOPY --from=tools /bin/x /x\nRUN --mount=from=tools,target=/t true\n', { alpine: { kind: 'image', ref: 'mirror.example/alpine:3' }, 'docker.io/library/tools:latest': { kind: 'image', ref: 'tools-pinned:1' } }, calls);
  const stage = p.platforms[0]!.stages[0]!;
  assert.equal(stage.base.kind === 'image' && stage.base.ref, `mirror.example/alpine:3@${D('a')}`);
  assert.deepEqual([...new Set(calls)].sort(), ['mirror.example/alpine:3', 'tools-pinned:1'], 'the images named are never resolved');
  const copy = (stage.vertices[0] as FileVertex).actions[0]!;
  assert.equal(copy.op === 'copy' && copy.from.kind === 'image' && copy.from.ref, `tools-pinned:1@${D('a')}`);
});

test('a directory context is read by COPY --from and mounts by its id, and replaces a stage of its name', async () => {
  const dir: NamedContextSource = { kind: 'context', contextId: D('d'), entries };
  const p = await plan('FROM alpine AS deps\nRUN echo never\nFROM alpine\nCOPY --from=src f.txt /f\nRUN --mount=from=src,target=/s cat /s/f.txt\nCOPY --from=deps / /deps\n', { src: dir, deps: dir });
  const stages = p.platforms[0]!.stages;
  const final = stages[stages.length - 1]!;
  const copy = (final.vertices[0] as FileVertex).actions[0]!;
  assert.deepEqual(copy.op === 'copy' && copy.from, { kind: 'context', contextId: D('d') });
  assert.equal(copy.op === 'copy' && copy.contentDigests, undefined, 'the main context\'s files are not its key');
  const run = final.vertices[1] as ExecVertex;
  assert.deepEqual(run.mounts.find((m) => m.type === 'bind')?.from, { kind: 'context', contextId: D('d') });
  const deps = stages.find((s) => s.name === 'deps')!;
  assert.equal(deps.base.kind, 'scratch');
  assert.deepEqual(deps.vertices.map((v) => v.name), ['[context deps] load named context'], 'the stage\'s own RUN does not run');
  // Another context id is another key.
  const other = await plan('FROM alpine\nCOPY --from=src f.txt /f\n', { src: { kind: 'context', contextId: D('e'), entries } });
  const again = await plan('FROM alpine\nCOPY --from=src f.txt /f\n', { src: dir });
  assert.notEqual(other.platforms[0]!.stages[0]!.cacheKey, again.platforms[0]!.stages[0]!.cacheKey);
});

test('name::platform wins for that platform; an invalid context name fails', async () => {
  const calls: string[] = [];
  await plan('FROM base\n', { base: { kind: 'image', ref: 'generic' }, 'base::linux/arm64': { kind: 'image', ref: 'arm-only' } }, calls, ['linux/amd64', 'linux/arm64']);
  assert.deepEqual(calls.sort(), ['arm-only', 'generic']);
  await assert.rejects(plan('FROM scratch\n', { 'Bad Name': { kind: 'image', ref: 'x' } }), /invalid context name "Bad Name"/);
});

test('ADD <git URL> copies the checkout the git source gives, keyed by its content', async () => {
  const asked: string[] = [];
  const planWith = (id: string) => planBuild(parse('FROM scratch\nADD --chown=1:2 --keep-git-dir https://h/r.git#v1:sub /src/\n'), {
    platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', resolveImage: async () => { throw new Error('no image'); },
    resolveGit: async (url, o) => { asked.push(`${url} ${o.keepGitDir}`); return { kind: 'context', contextId: D(id), entries }; },
  });
  const p = await planWith('d');
  const v = p.platforms[0]!.stages[0]!.vertices[0] as FileVertex;
  assert.deepEqual(v.actions, [{ op: 'copy', from: { kind: 'context', contextId: D('d') }, sources: ['/'], dest: '/src/', chown: '1:2', parents: false, exclude: [], link: false, followSymlinks: true, isAdd: false }]);
  assert.deepEqual(asked, ['https://h/r.git#v1:sub true']);
  assert.notEqual((await planWith('e')).platforms[0]!.stages[0]!.cacheKey, p.platforms[0]!.stages[0]!.cacheKey, 'another commit is another key');
  await assert.rejects(planBuild(parse('FROM scratch\nADD https://h/r.git /src\n'), {
    platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', resolveImage: async () => { throw new Error('no image'); },
    resolveGit: async () => { throw new Error('the address 127.0.0.1 is not reachable from builds (worker.egress)'); },
  }), (e: Error & { line?: number }) => e.line === 2 && /ADD https:\/\/h\/r\.git: the address 127\.0\.0\.1 is not reachable/.test(e.message));
});
