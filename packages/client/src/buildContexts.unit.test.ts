import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientError } from './ClientError.js';
import { namedContextValues, parseBuildContexts, parseLayoutRef } from './buildContexts.js';

test('--build-context: directories, docker-image://, git and http(s) URLs; unsupported forms and mistakes exit 2 before any upload', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'build-contexts-'));
  try {
    mkdirSync(join(cwd, 'src'));
    writeFileSync(join(cwd, 'src/.dockerignore'), 'x.key\n');
    const flags = await parseBuildContexts(['src=./src', 'base=docker-image://alpine:3@sha256:' + 'a'.repeat(64), 'lib=https://h/lib.git#main:dir', 'ssh=git@h:r.git'], cwd);
    assert.deepEqual(flags, [
      { name: 'src', dir: join(cwd, 'src') },
      { name: 'base', value: 'docker-image://alpine:3@sha256:' + 'a'.repeat(64) },
      { name: 'lib', value: 'https://h/lib.git#main:dir' },
      { name: 'ssh', value: 'git@h:r.git' },
    ]);
    const synced: Array<[string, string[]]> = [];
    const values = await namedContextValues(flags, async (dir, ignore) => { synced.push([dir, ignore]); return 'sha256:' + 'b'.repeat(64); });
    assert.equal(values.src, 'local:sha256:' + 'b'.repeat(64));
    assert.deepEqual(synced, [[join(cwd, 'src'), ['x.key']]], 'only the directory is synced, with its own .dockerignore');
    const usage = (pattern: RegExp) => (e: unknown) => e instanceof ClientError && e.exitCode === 2 && pattern.test(e.message) && !e.message.includes('\n');
    await assert.rejects(parseBuildContexts(['noequals'], cwd), usage(/expected name=VALUE/));
    await assert.rejects(parseBuildContexts(['a=./src', 'a=./src'], cwd), usage(/given twice/));
    await assert.rejects(parseBuildContexts(['a=./missing'], cwd), usage(/is not a directory/));
    await assert.rejects(parseBuildContexts(['a=oci-layout:///nowhere/l'], cwd), usage(/no OCI layout at \/nowhere\/l \(ENOENT\); write one with --output type=oci,dest=DIR,tar=false/));
    assert.deepEqual(await parseBuildContexts(['a=https://h/ctx.tar.gz'], cwd), [{ name: 'a', value: 'https://h/ctx.tar.gz' }]);
    await assert.rejects(parseBuildContexts(['a=ftp://h/ctx.tar.gz'], cwd), usage(/not supported by buildyard/));
    await assert.rejects(parseBuildContexts(['a=target:build'], cwd), usage(/not supported by buildyard/));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});

test('oci-layout://DIR[:TAG][@DIGEST] parses as buildx\'s ocilayout.Parse: latest without either, a colon not followed by a tag stays in the path', () => {
  const d = 'sha256:' + 'c'.repeat(64);
  assert.deepEqual(parseLayoutRef('oci-layout://out'), { path: 'out', tag: 'latest' });
  assert.deepEqual(parseLayoutRef('oci-layout:///a/out:v1'), { path: '/a/out', tag: 'v1' });
  assert.deepEqual(parseLayoutRef(`oci-layout://out@${d}`), { path: 'out', digest: d });
  assert.deepEqual(parseLayoutRef(`oci-layout://out:v1@${d}`), { path: 'out', tag: 'v1', digest: d });
  assert.deepEqual(parseLayoutRef('oci-layout://a:b/out'), { path: 'a:b/out', tag: 'latest' });
  assert.deepEqual(parseLayoutRef('oci-layout://out@notadigest'), { path: 'out@notadigest', tag: 'latest' });
});

test('an oci-layout context: the tag resolved as buildx (image name, then ref.name, then the only entry), the layout synced whole, refused in one line before any upload when it names nothing', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'build-contexts-layout-'));
  const d = (c: string) => 'sha256:' + c.repeat(64);
  const layout = (dir: string, manifests: unknown[]) => { mkdirSync(join(cwd, dir)); writeFileSync(join(cwd, dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests })); };
  try {
    layout('many', [
      { digest: d('1'), annotations: { 'org.opencontainers.image.ref.name': 'v2' } },
      { digest: d('2'), annotations: { 'io.containerd.image.name': 'v2', 'org.opencontainers.image.ref.name': '1' } },
      { digest: d('3'), annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
    ]);
    layout('one', [{ digest: d('4') }]);
    layout('odd', [{ digest: 'sha512:' + 'f'.repeat(128), annotations: { 'org.opencontainers.image.ref.name': 'latest' } }]);
    const flags = await parseBuildContexts(['a=oci-layout://many:v2', 'b=oci-layout://many', 'c=oci-layout://one:whatever', `e=oci-layout://many@${d('9')}`], cwd);
    assert.deepEqual(flags.map((f) => ('layout' in f ? f.layout.digest : '')), [d('2'), d('3'), d('4'), d('9')]);
    const synced: Array<[string, string[]]> = [];
    const values = await namedContextValues(flags.slice(0, 1), async (dir, ignore) => { synced.push([dir, ignore]); return d('b'); });
    assert.equal(values.a, `oci-layout://local:${d('b')}@${d('2')}`);
    assert.deepEqual(synced, [[join(cwd, 'many'), []]]);
    const usage = (pattern: RegExp) => (e: unknown) => e instanceof ClientError && e.exitCode === 2 && pattern.test(e.message) && !e.message.includes('\n');
    await assert.rejects(parseBuildContexts(['x=oci-layout://many:nope'], cwd), usage(/oci-layout reference could not be resolved: no image tagged "nope" in .*many\/index\.json; add :TAG or @DIGEST/));
    await assert.rejects(parseBuildContexts(['x=oci-layout://odd'], cwd), usage(/invalid oci-layout digest sha512:f+; a layout names its blobs by sha256/));
    await assert.rejects(parseBuildContexts(['x=oci-layout://'], cwd), usage(/oci-layout:\/\/ needs a directory/));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
