// --call=targets|outline|check answered from the Dockerfile (examples and messages as BuildKit's
// frontend/dockerfile/dockerfile_lint_test.go and buildx's printers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCall, runCallSubrequest } from './callSubrequests.js';
import { ClientError, ExitCode } from './ClientError.js';

const run = (name: 'targets' | 'outline' | 'check', dockerfile: string, extra: { target?: string; format?: 'text' | 'json'; buildArgs?: Record<string, string> } = {}) =>
  runCallSubrequest({ name, format: extra.format ?? 'text' }, { dockerfile, dockerfileName: 'Dockerfile', target: extra.target, buildArgs: extra.buildArgs });

test('parseCall: --check is --call=check; format=json; unknown names and options are usage errors', () => {
  assert.deepEqual(parseCall(undefined, true), { name: 'check', format: 'text' });
  assert.deepEqual(parseCall(undefined, false), { name: 'build', format: 'text' });
  assert.deepEqual(parseCall('targets,format=json', false), { name: 'targets', format: 'json' });
  for (const [v, c] of [['lint', false], ['outline,format=yaml', false], ['targets', true]] as const) {
    assert.throws(() => parseCall(v, c), (e: unknown) => e instanceof ClientError && e.exitCode === ExitCode.Usage);
  }
});

const MULTI = `# syntax=docker/dockerfile:1
ARG GO_VERSION=1.22

# base Base stage for go builds
FROM --platform=$BUILDPLATFORM golang:\${GO_VERSION} AS base
# GOFLAGS flags passed to go
ARG GOFLAGS=-mod=vendor
RUN --mount=type=secret,id=aws,required=true --mount=type=ssh go build

FROM alpine AS unused
RUN --mount=type=secret,id=other true

# release Final image
FROM alpine AS Release
COPY --from=base /x /y
`;

test('targets: buildx table with description from "# NAME ..." above FROM and the last stage marked default', () => {
  assert.equal(run('targets', MULTI).output,
    'TARGET            DESCRIPTION\n' +
    'base              Base stage for go builds\n' +
    'unused            \n' +
    'release (default) Final image\n');
  const json = JSON.parse(run('targets', MULTI, { format: 'json' }).output);
  assert.equal(json.targets[0].platform, '$BUILDPLATFORM');
  assert.deepEqual(json.targets[0].location, { ranges: [{ start: { line: 5 }, end: { line: 5 } }] });
  assert.equal(json.targets[0].base, 'golang:${GO_VERSION}');
  assert.equal(json.targets[2].default, true);
  assert.equal(json.targets[0].default, undefined);
  assert.equal(Buffer.from(json.sources[0], 'base64').toString(), MULTI);
});

test('outline: the target\'s args (meta args its FROMs read), secrets and ssh of the stages it reads, not of others', () => {
  assert.equal(run('outline', MULTI, { target: 'release' }).output,
    'TARGET:      release\nDESCRIPTION: Final image\n\n' +
    'BUILD ARG    VALUE         DESCRIPTION\n' +
    'GO_VERSION   1.22          \n' +
    'GOFLAGS      -mod=vendor   flags passed to go\n\n' +
    'SECRET   REQUIRED\naws      true\n\n' +
    'SSH       REQUIRED\ndefault   \n\n');
  const json = JSON.parse(run('outline', MULTI, { target: 'unused', format: 'json', buildArgs: { GO_VERSION: '1.23' } }).output);
  assert.equal(json.name, 'unused');
  assert.deepEqual(json.secrets.map((s: { name: string }) => s.name), ['other']);
  assert.equal(json.args, undefined);
  assert.equal(JSON.parse(run('outline', MULTI, { target: 'base', format: 'json', buildArgs: { GO_VERSION: '1.23' } }).output).args[0].value, '1.23');
  assert.throws(() => run('outline', MULTI, { target: 'nope' }), /target stage "nope" could not be found/);
});

test('check: buildx text output, exit 1 on warnings, 0 with "Check complete, no warnings found."', () => {
  const clean = run('check', 'FROM alpine\nCMD ["true"]\n');
  assert.deepEqual(clean, { output: 'Check complete, no warnings found.\n', exitCode: 0 });
  const r = run('check', 'FROM alpine as base\nCMD ["true"]\n');
  assert.equal(r.exitCode, 1);
  assert.equal(r.output,
    '\nWARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/\n' +
    "'as' and 'FROM' keywords' casing do not match\n" +
    'Dockerfile:1\n--------------------\n   1 | >>> FROM alpine as base\n   2 |     CMD ["true"]\n--------------------\n\n' +
    'Check complete, 1 warning has been found!\n');
  const json = JSON.parse(run('check', 'FROM alpine as base\n', { format: 'json' }).output);
  assert.equal(json.warnings[0].ruleName, 'FromAsCasing');
  assert.equal(json.warnings[0].url, 'https://docs.docker.com/go/dockerfile/rule/from-as-casing/');
  assert.deepEqual(json.warnings[0].location.ranges[0].start, { line: 1 });
  assert.equal(json.sources[0].filename, 'Dockerfile');
});

test('check: # check=skip=... and error=true directives, and BUILDKIT_DOCKERFILE_CHECK', () => {
  const df = 'FROM alpine as base\nMAINTAINER me\n';
  assert.match(run('check', `# check=skip=FromAsCasing\n${df}`).output, /^\nWARNING: MaintainerDeprecated[^]*1 warning has been found!\n$/);
  assert.deepEqual(run('check', `# check=skip=all\n${df}`), { output: 'Check complete, no warnings found.\n', exitCode: 0 });
  assert.deepEqual(run('check', df, { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=FromAsCasing,MaintainerDeprecated' } }).exitCode, 0);
  // The build arg wins over the directive, as in dockerui.
  assert.deepEqual(run('check', `# check=error=true\n${df}`, { buildArgs: { BUILDKIT_DOCKERFILE_CHECK: 'skip=all' } }).exitCode, 0);
  const err = run('check', `# check=error=true\n${df}`);
  assert.equal(err.exitCode, 1);
  assert.match(err.output, /\nERROR: lint violation found for rules: FromAsCasing, MaintainerDeprecated\nCheck complete, 2 warnings have been found!\n$/);
});
