// How a resolved target becomes `buildyard build` flags (buildx's toBuildOpt), and how runBake runs the builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveTargets } from './resolve.js';
import { runBake, targetBuild } from './runBake.js';
import { readFileSync, writeFileSync as writeFile } from 'node:fs';
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
  assert.throws(() => targetBuild(r.targets.get('linked')!, {}, '/work'), /target "linked": contexts\.base = "target:named" \(one target built into another\) is not supported/);
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
