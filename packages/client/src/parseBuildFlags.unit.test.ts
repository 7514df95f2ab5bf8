import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClientError, ExitCode } from './ClientError.js';
import { parseBuildArgs, parseBuildFlags, parseCacheSpec, parseOutput, parsePlatforms, parseSecret } from './parseBuildFlags.js';
import { imageRefsInDockerfile, registriesOf, selectRegistryAuth } from './selectRegistryAuth.js';
import { parseCsv } from './parseCsv.js';

const penv = { env: {}, cwd: '/work/app' };

function usage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof ClientError && e.exitCode === ExitCode.Usage && re.test(e.message));
}

test('outputs: buildx csv forms and shorthands', () => {
  assert.deepEqual(parseOutput('type=local,dest=out', '/w'), { type: 'local', attrs: { dest: '/w/out' } });
  assert.deepEqual(parseOutput('out', '/w'), { type: 'local', attrs: { dest: '/w/out' } });
  assert.deepEqual(parseOutput('-', '/w'), { type: 'tar', attrs: { dest: '-' } });
  assert.deepEqual(parseOutput('type=tar,dest=-', '/w'), { type: 'tar', attrs: { dest: '-' } });
  assert.deepEqual(parseOutput('type=oci,dest=img.tar', '/w'), { type: 'oci', attrs: { dest: '/w/img.tar' } });
  assert.deepEqual(parseOutput('type=registry,name=r.io/a:1', '/w'), { type: 'image', attrs: { name: 'r.io/a:1', push: 'true' } });
  assert.deepEqual(parseOutput('type=image,"name=a:1,b:2",push=true', '/w'), { type: 'image', attrs: { name: 'a:1,b:2', push: 'true' } });
  usage(() => parseOutput('dest=x'), /type is required/);
  usage(() => parseOutput('type=zip,dest=x'), /unknown type "zip"/);
  usage(() => parseOutput('type=local'), /needs dest=DIR/);
  usage(() => parseOutput('type=tar'), /needs dest=FILE/);
});

test('csv quoting follows encoding/csv', () => {
  assert.deepEqual(parseCsv('a=1,"b=2,3",c=""""'), ['a=1', 'b=2,3', 'c="']);
  usage(() => parseCsv('"a=1', '--output'), /unterminated quote/);
});

test('cache specs: csv and bare registry ref', () => {
  assert.deepEqual(parseCacheSpec('r.io/app:cache', '--cache-from'), { type: 'registry', attrs: { ref: 'r.io/app:cache' } });
  assert.deepEqual(parseCacheSpec('type=registry,ref=r.io/app:c,mode=max', '--cache-to'), { type: 'registry', attrs: { ref: 'r.io/app:c', mode: 'max' } });
  assert.deepEqual(parseCacheSpec('type=local,src=cache', '--cache-from', '/w'), { type: 'local', attrs: { src: '/w/cache' } });
  usage(() => parseCacheSpec('ref=x,mode=max', '--cache-to'), /type is required/);
});

test('secrets: src, env, type=env and bare ids', () => {
  assert.deepEqual(parseSecret('id=npm,src=.npmrc', {}, '/w'), { id: 'npm', src: '/w/.npmrc' });
  assert.deepEqual(parseSecret('id=tok,env=GH_TOKEN'), { id: 'tok', env: 'GH_TOKEN' });
  assert.deepEqual(parseSecret('type=env,id=tok,src=GH_TOKEN'), { id: 'tok', env: 'GH_TOKEN' });
  assert.deepEqual(parseSecret('id=API_KEY', { API_KEY: 'x' }), { id: 'API_KEY', env: 'API_KEY' });
  assert.deepEqual(parseSecret('id=key.pem', {}, '/w'), { id: 'key.pem', src: '/w/key.pem' });
  assert.deepEqual(parseSecret('src=/etc/token'), { id: 'token', src: '/etc/token' });
  usage(() => parseSecret('id=x,path=y'), /unexpected key "path"/);
  usage(() => parseSecret('type=ssh,id=x'), /unsupported type/);
});

test('build args: values, bare names from the environment, unset names skipped', () => {
  assert.deepEqual(parseBuildArgs(['A=1', 'B=', 'C=x=y', 'HOME_DIR', 'MISSING'], { HOME_DIR: '/root' }), { A: '1', B: '', C: 'x=y', HOME_DIR: '/root' });
  usage(() => parseBuildArgs(['=1']), /missing name/);
});

test('platforms: comma lists, repeats, normalisation, de-duplication', () => {
  assert.deepEqual(parsePlatforms(['linux/amd64,linux/arm64', 'arm64', 'linux/x86_64']), ['linux/amd64', 'linux/arm64']);
  assert.deepEqual(parsePlatforms(['linux/arm/v7']), ['linux/arm/v7']);
  usage(() => parsePlatforms(['linux/']), /--platform/);
});

test('--push and --load turn into outputs named by the tags', () => {
  const o = parseBuildFlags({ tag: ['r.io/team/app:1', 'r.io/team/app:latest'], push: true, load: true }, penv);
  assert.deepEqual(o.outputs, [
    { type: 'image', attrs: { push: 'true', name: 'r.io/team/app:1,r.io/team/app:latest' } },
    { type: 'docker', attrs: { dest: '/work/app/app.tar', name: 'r.io/team/app:1,r.io/team/app:latest' } },
  ]);
  assert.match(o.notes[0], /no Docker engine.*app\.tar/);
  usage(() => parseBuildFlags({ push: true }, penv), /no image name/);
  usage(() => parseBuildFlags({ tag: ['UPPER:case'] }, penv), /-t "UPPER:case"/);
  assert.equal(parseBuildFlags({ quiet: true, progress: 'plain' }, penv).progress, 'quiet');
  usage(() => parseBuildFlags({ progress: 'fancy' }, penv), /--progress/);
  usage(() => parseBuildFlags({ network: 'bridge' }, penv), /--network/);
});

test('--allow and --add-host take buildx\'s comma lists, repeatable; the server checks the values', () => {
  const o = parseBuildFlags({ allow: ['network.host,security.insecure', 'network.host'], addHost: ['cache.local:10.0.0.5', 'db:fe80::1'] }, penv);
  assert.deepEqual(o.allow, ['network.host', 'security.insecure']);
  assert.deepEqual(o.addHosts, ['cache.local:10.0.0.5', 'db:fe80::1']);
  assert.deepEqual(parseBuildFlags({}, penv).allow, []);
});

test('registry auth: only registries the build names', () => {
  const dockerfile = [
    'FROM --platform=$BUILDPLATFORM ghcr.io/org/base:1 AS build',
    'FROM build AS test',
    'FROM scratch',
    'COPY --from=build /a /a',
    'COPY --from=quay.io/x/tool:2 /bin/t /t',
    'FROM ${BASE}',
    'FROM busybox',
  ].join('\n');
  assert.deepEqual(imageRefsInDockerfile(dockerfile), ['ghcr.io/org/base:1', 'quay.io/x/tool:2', 'busybox']);
  const scope = {
    tags: ['127.0.0.1:5000/app:1'],
    outputs: [{ type: 'image', attrs: { name: 'push.example.com/app' } }],
    cacheFrom: [{ type: 'registry', attrs: { ref: 'cache.example.com/c:1' } }],
    cacheTo: [{ type: 'local', attrs: { dest: '/tmp/c' } }],
    dockerfile,
  };
  assert.deepEqual(registriesOf(scope), ['127.0.0.1:5000', 'cache.example.com', 'docker.io', 'ghcr.io', 'push.example.com', 'quay.io']);
  const auth = selectRegistryAuth(scope, {
    'ghcr.io': { username: 'u', password: 'p' },
    'unrelated.example.com': { username: 'no', password: 'no' },
    'docker.io': { identityToken: 'idt' },
  });
  assert.deepEqual(auth, [
    { registry: 'docker.io', username: '', password: '', identityToken: 'idt' },
    { registry: 'ghcr.io', username: 'u', password: 'p', identityToken: '' },
  ]);
});

test('--annotation becomes BuildKit exporter attributes on every image-writing output; --shm-size and --ulimit as go-units reads them', () => {
  const penv = { env: {}, cwd: '/w' };
  const o = parseBuildFlags({ tag: ['r/a:1'], push: true, platform: ['linux/amd64,linux/arm64'], output: ['type=local,dest=out', 'type=oci,dest=a.tar'],
    annotation: ['k=v', 'index:i=1', 'manifest[linux/arm64]:m=2', 'manifest:x=a=b'] }, penv);
  const want = { 'annotation-manifest.k': 'v', 'annotation-index.i': '1', 'annotation-manifest[linux/arm64].m': '2', 'annotation-manifest.x': 'a=b' };
  assert.deepEqual(o.outputs.map((x) => Object.fromEntries(Object.entries(x.attrs).filter(([k]) => k.startsWith('annotation')))), [{}, want, want]);
  // Without attestations (buildx's default provenance makes an index) one platform has no index to annotate.
  assert.throws(() => parseBuildFlags({ annotation: ['index:i=1'], provenance: 'false' }, penv), /single-platform build/);
  assert.throws(() => parseBuildFlags({ annotation: ['bogus:k=v'] }, penv), /write KEY=VALUE, index:KEY=VALUE/);
  assert.throws(() => parseBuildFlags({ annotation: ['manifest[nope/]:k=v'] }, penv), /platform "nope\/"/);
  const limits = parseBuildFlags({ shmSize: '1g', ulimit: ['nofile=1024:2048', 'nproc=64'] }, penv);
  assert.equal(limits.shmSize, 1024 ** 3);
  assert.deepEqual(limits.ulimits, ['nofile=1024:2048', 'nproc=64:64']);
  assert.equal(parseBuildFlags({}, penv).shmSize, 0);
  assert.throws(() => parseBuildFlags({ shmSize: 'big' }, penv), (e: ClientError) => e.exitCode === 2 && /^--shm-size: invalid shm size "big"/.test(e.message));
  assert.throws(() => parseBuildFlags({ ulimit: ['nofile=2:1'] }, penv), (e: ClientError) => e.exitCode === 2 && /^--ulimit: ulimit soft limit must be less than or equal to hard limit: 2 > 1/.test(e.message));
  assert.equal(parseBuildFlags({ iidfile: 'iid' }, penv).iidfile, '/w/iid');
});

test('cache specs the builder would refuse after the upload are refused here, with exit 2', () => {
  usage(() => parseCacheSpec('type=gha', '--cache-to'), /unsupported cache type "gha"; this builder supports registry, local, inline/);
  usage(() => parseCacheSpec('type=registry,ref=r/a:c,mode=all', '--cache-to'), /unknown mode "all"/);
  usage(() => parseCacheSpec('type=registry,mode=max', '--cache-to'), /type=registry needs ref=/);
  usage(() => parseCacheSpec('type=local', '--cache-from'), /type=local needs src=DIR/);
  usage(() => parseCacheSpec('type=inline', '--cache-from'), /inline cache is read from the image itself/);
  usage(() => parseCacheSpec('type=inline,mode=max', '--cache-to'), /only mode=min/);
  assert.deepEqual(parseCacheSpec('type=inline', '--cache-to'), { type: 'inline', attrs: {} });
  usage(() => parseBuildFlags({ output: ['-', 'type=tar,dest=-'] }, { env: {}, cwd: '/w' }), /more than one output writes to stdout/);
});

test('--output type=oci|docker,tar=: a Go bool; tar=false needs a directory, not stdout', () => {
  assert.deepEqual(parseOutput('type=oci,dest=l,tar=false', '/w'), { type: 'oci', attrs: { dest: '/w/l', tar: 'false' } });
  assert.deepEqual(parseOutput('type=docker,dest=l,tar=0', '/w'), { type: 'docker', attrs: { dest: '/w/l', tar: '0' } });
  assert.throws(() => parseOutput('type=oci,dest=l,tar=no', '/w'), /--output "type=oci,dest=l,tar=no": non-bool value no specified for tar; use tar=true/);
  assert.throws(() => parseOutput('type=oci,dest=-,tar=false', '/w'), /tar=false writes an OCI layout directory, not a stream; give dest=DIR/);
});

test('--no-cache-filter: repeatable, each a comma-separated list of stage names', () => {
  assert.deepEqual(parseBuildFlags({ noCacheFilter: ['deps, build', 'test'] }, { env: {}, cwd: '/w' }).noCacheFilter, ['deps', 'build', 'test']);
  assert.deepEqual(parseBuildFlags({}, { env: {}, cwd: '/w' }).noCacheFilter, []);
});

test('--build-arg BUILDKIT_INLINE_CACHE=1 asks for an inline cache, as buildx (once, with or without --cache-to type=inline)', () => {
  const flags = (args: string[], cacheTo?: string[]) => parseBuildFlags({ buildArg: args, cacheTo }, { env: {}, cwd: '/w' }).cacheTo;
  assert.deepEqual(flags(['BUILDKIT_INLINE_CACHE=1']), [{ type: 'inline', attrs: {} }]);
  assert.deepEqual(flags(['BUILDKIT_INLINE_CACHE=true'], ['type=inline']), [{ type: 'inline', attrs: {} }]);
  assert.deepEqual(flags(['BUILDKIT_INLINE_CACHE=0']), []);
  assert.deepEqual(flags(['BUILDKIT_INLINE_CACHE=yes']), [], 'not a Go bool: nothing, as buildx ignores it');
});

test('--output type=local,mode=: copy or delete (any case), else exit 2 naming the mode', () => {
  assert.equal(parseOutput('type=local,dest=o,mode=DELETE', '/w').attrs.mode, 'DELETE');
  assert.throws(() => parseOutput('type=local,dest=o,mode=sync', '/w'), /invalid local exporter mode "sync"; use mode=copy/);
});
