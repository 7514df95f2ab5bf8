// How a resolved target becomes `buildyard build` flags (buildx's toBuildOpt).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveTargets } from './resolve.js';
import { targetBuild } from './runBake.js';

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
  contexts = { base = "docker-image://alpine" }
}`, ['default', 'inline', 'named']);
  const a = targetBuild(r.targets.get('default')!, { progress: 'plain' }, '/work');
  assert.equal(a.context, 'app');
  assert.equal(a.flags.file, 'app/build/Dockerfile');
  assert.deepEqual(a.flags.buildArg, ['A=1']);
  assert.deepEqual(a.flags.platform, ['linux/amd64', 'linux/arm64']);
  assert.deepEqual(a.flags.addHost, ['db:10.0.0.2']);
  const b = targetBuild(r.targets.get('inline')!, {}, '/work');
  assert.equal(b.flags.file, '-');
  assert.equal(b.inline, 'FROM scratch');
  assert.throws(() => targetBuild(r.targets.get('named')!, {}, '/work'), /target "named": contexts \(base\) is not supported/);
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
