// How a resolved target becomes `buildyard build` flags (buildx's toBuildOpt), and how runBake runs the builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveTargets } from './resolve.js';
import { runBake, targetBuild } from './runBake.js';
import { mkdirSync, readFileSync, writeFileSync as writeFile } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { RunBuildOptions } from '@buildyard/client';
import { testWorkDir } from '@buildyard/testkit';

const builtins = { BAKE_CMD_CONTEXT: 'cwd://', BAKE_LOCAL_PLATFORM: 'linux/amd64' };
const resolve = (text: string, targets: string[] = []) => resolveTargets([{ name: 'docker-bake.hcl', text }], { env: {}, builtins, targets, overrides: [] });

test('a target becomes build flags as buildx: Dockerfile under the context, inline Dockerfiles, what cannot build yet is refused', () => {
  const r = resolve(`
target "default" {
  context = "./app/"
  dockerfile = "build/Dockerfile"
  args = { A = "1", N = null }
  tags = ["reg/app:1"]
  platforms = ["linux/amd64", "linux/arm64"]
  output = ["type=registry"]
  extra-hosts = { db = "10.0.0.2" }
}
target "inline" {
  dockerfile-inline = "FROM scratch"
}
target "named" {
  contexts = { base = "docker-image://alpine", src = "cwd://lib" }
}
target "linked" {
  contexts = { base = "target:named" }
}`, ['default', 'inline', 'named', 'linked']);
  const a = targetBuild(r.targets.get('default')!, { progress: 'plain' }, '/work');
  assert.equal(a.context, 'app');
  assert.equal(a.flags.file, 'app/build/Dockerfile');
  assert.deepEqual(a.flags.buildArg, ['A=1']);
  assert.deepEqual(a.flags.platform, ['linux/amd64', 'linux/arm64']);
  assert.deepEqual(a.flags.addHost, ['db:10.0.0.2']);
  const b = targetBuild(r.targets.get('inline')!, {}, '/work');
  assert.equal(b.flags.file, '-');
  assert.equal(b.inline, 'FROM scratch');
  assert.deepEqual(targetBuild(r.targets.get('named')!, {}, '/work').flags.buildContext, ['base=docker-image://alpine', 'src=lib']);
  const linked = targetBuild(r.targets.get('linked')!, {}, '/work');
  assert.deepEqual([linked.links, linked.flags.buildContext], [['named'], ['base=target:named']], 'built after "named", which it names by its layout then');
  const loaded = resolveTargets([{ name: 'docker-bake.hcl', text: 'target "default" {\n  tags = ["app:1"]\n}\n' }], { env: {}, builtins, targets: [], overrides: ['*.output=type=docker'] });
  const l = targetBuild(loaded.targets.get('default')!, {}, '/work');
  assert.equal(l.flags.load, true, '--load writes the docker archive, as build --load');
  assert.deepEqual(l.flags.output, []);
  const bad = resolve('target "default" {\n  output = ["type=nosuch"]\n}\n').targets.get('default')!;
  assert.throws(() => targetBuild(bad, {}, '/work'), (e: Error & { exitCode?: number }) => e.exitCode === 2);
});

test('--print checks what buildx checks before printing (platforms, outputs) but shows targets buildyard cannot build yet', () => {
  const r = resolve('target "default" {\n  platforms = ["1"]\n}\ntarget "named" {\n  contexts = { base = "docker-image://alpine" }\n  shm-size = "1g"\n}\n', ['default', 'named']);
  assert.throws(() => targetBuild(r.targets.get('default')!, {}, '/work', true), (e: Error & { exitCode?: number }) => e.exitCode === 2 && /1/.test(e.message));
  assert.doesNotThrow(() => targetBuild(r.targets.get('named')!, {}, '/work', true));
});

// runBake's own work around the builds (the builds themselves run on a real cluster in
// test/e2e/bake.test.ts): concurrency, the shared stderr, the first failure, the metadata file.

function bakeDir(text: string): string {
  const dir = testWorkDir('bake-run-');
  writeFile(join(dir, 'docker-bake.hcl'), text);
  return dir;
}
const sink = () => { let text = ''; return { stream: new Writable({ write(c, _e, cb) { text += c.toString(); cb(); } }), text: () => text }; };
const TWO = 'group "default" { targets = ["a", "b"] }\ntarget "a" {\n  tags = ["a:1"]\n}\ntarget "b" {\n  tags = ["b:1"]\n}\n';

test('several targets start together; their plain lines are whole, numbered across targets and marked; metadata is per target', async () => {
  const dir = bakeDir(TWO);
  const started: string[] = [];
  let release!: () => void;
  const bothStarted = new Promise<void>((r) => { release = r; });
  const err = sink();
  const code = await runBake({
    targets: [], flags: { metadataFile: join(dir, 'meta.json') }, cwd: dir, env: {}, stderr: err.stream, stdout: sink().stream,
    build: async (o: RunBuildOptions) => {
      const name = o.vertexPrefix!;
      started.push(name);
      if (started.length === 2) release();
      await bothStarted; // neither finishes before both started: they run at once
      assert.equal(o.flags.progress, 'plain', 'no two tty views on one terminal');
      o.stderr!.write(`#1 [${name} 1/1] RUN x`);
      o.stderr!.write(`\n#1 DONE 0.1s\n`);
      o.stderr!.write(`pushed ${name}:1\n`);
      writeFile(o.flags.metadataFile!, JSON.stringify({ 'containerimage.digest': `sha256:${name}` }));
      return 0;
    },
  });
  assert.equal(code, 0);
  assert.deepEqual(started.sort(), ['a', 'b']);
  const lines = err.text().trim().split('\n');
  const numbers = new Set(lines.filter((l) => l.includes('RUN x')).map((l) => l.split(' ')[0]));
  assert.equal(numbers.size, 2, `each target's step has its own number: ${lines.join(' | ')}`);
  assert.ok(lines.includes('[a] pushed a:1') && lines.includes('[b] pushed b:1'));
  assert.match(lines[0], /^WARNING: No output specified for a, b target\(s\)\. Build result will only remain in the build cache/);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')), { a: { 'containerimage.digest': 'sha256:a' }, b: { 'containerimage.digest': 'sha256:b' } });
});

test('the first failure cancels the other targets and gives the exit code; rawjson lines are left as they are', async () => {
  const dir = bakeDir(TWO);
  const err = sink();
  const code = await runBake({
    targets: [], flags: { progress: 'rawjson' }, cwd: dir, env: {}, stderr: err.stream, stdout: sink().stream,
    build: async (o: RunBuildOptions) => {
      o.stderr!.write(`{"vertexes":[{"name":"[${o.vertexPrefix} 1/1] RUN"}]}\n`);
      if (o.vertexPrefix === 'b') return 1;
      if (!o.signal!.aborted) await new Promise((r) => o.signal!.addEventListener('abort', r, { once: true }));
      return 130;
    },
  });
  assert.equal(code, 1);
  for (const l of err.text().trim().split('\n')) assert.doesNotThrow(() => JSON.parse(l), l);
});

test('a target:X context: X builds first, into an OCI layout of its own (tar=false) besides its outputs; the dependent names that layout at its digest; a failed X stops it', async () => {
  const hcl = 'target "app" {\n  contexts = { base = "target:base" }\n  tags = ["app:1"]\n}\ntarget "base" {\n  output = ["type=local,dest=out"]\n}\n';
  const dir = bakeDir(hcl);
  const order: string[] = [];
  const seen = new Map<string, RunBuildOptions['flags']>();
  const digest = `sha256:${'b'.repeat(64)}`;
  const build = (failBase: boolean) => async (o: RunBuildOptions) => {
    const name = o.vertexPrefix!;
    order.push(name);
    seen.set(name, o.flags);
    if (name === 'base') {
      if (failBase) return 1;
      const layout = /^type=oci,dest=(.*),tar=false$/.exec(o.flags.output!.at(-1)!)![1]!;
      mkdirSync(layout, { recursive: true });
      writeFile(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ digest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
    }
    return 0;
  };
  const err = sink();
  assert.equal(await runBake({ targets: ['app'], flags: { progress: 'plain' }, cwd: dir, env: {}, stderr: err.stream, stdout: sink().stream, build: build(false) }), 0);
  assert.deepEqual(order, ['base', 'app']);
  assert.equal(seen.get('base')!.output!.length, 1, 'a target only a link pulled in exports nothing else, as in buildx');
  assert.match(seen.get('app')!.buildContext![0]!, new RegExp(`^base=oci-layout://.*/base@${digest}$`));
  assert.doesNotMatch(err.text(), /No output specified for .*base/, 'nor is it warned about');
  order.length = 0;
  assert.equal(await runBake({ targets: ['app', 'base'], flags: { progress: 'plain' }, cwd: dir, env: {}, stderr: sink().stream, stdout: sink().stream, build: build(false) }), 0);
  assert.deepEqual(order, ['base', 'app']);
  assert.deepEqual(seen.get('base')!.output!.map((o) => o.split(',')[0]), ['type=local', 'type=oci'], 'a requested target keeps its outputs');
  order.length = 0;
  assert.equal(await runBake({ targets: ['app'], flags: { progress: 'plain' }, cwd: dir, env: {}, stderr: sink().stream, stdout: sink().stream, build: build(true) }), 1);
  assert.deepEqual(order, ['base'], 'app never starts');
});
