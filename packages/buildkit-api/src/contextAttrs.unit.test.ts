// The context attributes buildx and buildctl send: a git URL as `context` (a git context the
// server fetches), `dockerfilekey` forcing a local Dockerfile, and `context:NAME` named contexts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildkit } from '@buildyard/proto';
import { dockerfileAttrs, UnsupportedRequest, unknownAttrs } from './solveRequest.js';

const solve = (FrontendAttrs: Record<string, string>) => buildkit.SolveRequest.fromPartial({ Frontend: 'dockerfile.v0', FrontendAttrs });

test('a git URL in `context` is a git context; another http(s) URL is a download (tarball or Dockerfile); a local name is not a URL', () => {
  const git = dockerfileAttrs(solve({ context: 'https://example.com/app.git#main:sub' }));
  assert.equal(git.contextUrl, 'https://example.com/app.git#main:sub');
  assert.equal(git.forceLocalDockerfile, false);
  assert.equal(dockerfileAttrs(solve({ context: 'git@github.com:a/b.git', dockerfilekey: 'dockerfile' })).forceLocalDockerfile, true);
  assert.equal(dockerfileAttrs(solve({})).contextUrl, '');
  assert.equal(git.contextIsHttp, false);
  const tarball = dockerfileAttrs(solve({ context: 'https://example.com/ctx.tar.gz' }));
  assert.deepEqual([tarball.contextUrl, tarball.contextIsHttp], ['https://example.com/ctx.tar.gz', true]);
  assert.deepEqual(unknownAttrs(solve({ context: 'https://example.com/app.git', 'context:x': 'local:x' })), []);
});

test('context:NAME attributes: local:, docker-image://, oci-layout://, git and http(s) URLs pass; others are refused', () => {
  const layout = `oci-layout://store:v1@sha256:${'a'.repeat(64)}`;
  const attrs = dockerfileAttrs(solve({ 'context:src': 'local:src', 'context:base::linux/arm64': 'docker-image://alpine:3', 'context:lib': 'https://h/lib.git#v1', 'context:img': layout }));
  assert.deepEqual(attrs.namedContexts, { src: 'local:src', 'base::linux/arm64': 'docker-image://alpine:3', lib: 'https://h/lib.git#v1', img: layout });
  assert.equal(dockerfileAttrs(solve({ 'context:x': 'https://h/ctx.tar' })).namedContexts.x, 'https://h/ctx.tar');
  assert.throws(() => dockerfileAttrs(solve({ 'context:x': 'ftp://h/ctx.tar' })), /named context x=ftp:\/\/h\/ctx\.tar is not supported/);
  assert.throws(() => dockerfileAttrs(solve({ 'context:x': 'input:x' })), UnsupportedRequest);
});

test('the multi-platform and hostname attributes become dockerui\'s build args, which win when also given', () => {
  assert.deepEqual(dockerfileAttrs(solve({ 'multi-platform': 'true', hostname: 'box' })).buildArgs, { BUILDKIT_MULTI_PLATFORM: 'true', BUILDKIT_SANDBOX_HOSTNAME: 'box' });
  assert.deepEqual(dockerfileAttrs(solve({ hostname: 'box', 'build-arg:BUILDKIT_SANDBOX_HOSTNAME': 'arg' })).buildArgs, { BUILDKIT_SANDBOX_HOSTNAME: 'arg' });
});
