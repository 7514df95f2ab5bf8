// BuildKit's linter rules and what a build reports of them (build --check's output is the
// client's: packages/client/src/callSubrequests.unit.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from './parse.js';
import { lintBuild, lintDockerfile, parseCheckDirective } from './lint.js';

const details = (dockerfile: string) => lintDockerfile(parse(dockerfile)).map((w) => `${w.rule}@${w.ins.startLine}: ${w.detail}`);

test('lintDockerfile: BuildKit\'s rules and messages', () => {
  assert.deepEqual(details('FROM scratch AS BadStageName\nFROM scratch as base2\n'), [
    "StageNameCasing@1: Stage name 'BadStageName' should be lowercase",
    "FromAsCasing@2: 'as' and 'FROM' keywords' casing do not match",
  ]);
  assert.deepEqual(details('from scratch AS base\n'), ["FromAsCasing@1: 'AS' and 'from' keywords' casing do not match"]);
  assert.deepEqual(details('FROM scratch\nCOPY Dockerfile \\\n\n  .\nENTRYPOINT ["/bin/sh"]\n'), ['NoEmptyContinuation@2: Empty continuation line']);
  assert.deepEqual(details('FROM alpine\nrun echo hi\nCMD ["x"]\n'), ["ConsistentInstructionCasing@2: Command 'run' should match the case of the command majority (uppercase)"]);
  assert.deepEqual(details('from alpine\nrun echo hi\nCMD ["x"]\n'), ["ConsistentInstructionCasing@3: Command 'CMD' should match the case of the command majority (lowercase)"]);
  assert.deepEqual(details('FROM scratch AS b\nFROM scratch AS b\n'), ['DuplicateStageName@2: Duplicate stage name "b", stage names should be unique']);
  assert.deepEqual(details('FROM busybox AS scratch\nFROM alpine AS context\n'), [
    'ReservedStageName@1: Stage name should not use the same name as reserved stage "scratch"',
    'ReservedStageName@2: Stage name should not use the same name as reserved stage "context"',
  ]);
  assert.deepEqual(details('FROM scratch\nCMD mycommand\nENTRYPOINT ["x"]\n'), ['JSONArgsRecommended@2: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals']);
  assert.deepEqual(details('FROM scratch\nSHELL ["/bin/bash", "-c"]\nCMD mycommand\n'), []);
  assert.deepEqual(details('FROM scratch\nMAINTAINER me@example.com\n'), ['MaintainerDeprecated@2: Maintainer instruction is deprecated in favor of using label']);
  assert.deepEqual(details('ARG BASE=alpine\nFROM ${BASE}\nFROM ${BULIDPLATFORM:-busybox}\nFROM --platform=$TARGETOS alpine\n'), ["UndefinedArgInFrom@3: FROM argument 'BULIDPLATFORM' is not declared (did you mean BUILDPLATFORM?)"]);
  assert.deepEqual(details('FROM ${NOPE}\n'), [
    "UndefinedArgInFrom@1: FROM argument 'NOPE' is not declared",
    'InvalidDefaultArgInFrom@1: Default value for ARG ${NOPE} results in empty or invalid base image name',
  ]);
  assert.deepEqual(details('FROM scratch\nWORKDIR app/\nWORKDIR subdir\n'), ['WorkdirRelativePath@2: Relative workdir "app/" can have unexpected results if the base image changes']);
  assert.deepEqual(details('FROM scratch\nWORKDIR /app\nWORKDIR subdir\n'), []);
  assert.deepEqual(details('FROM scratch\nCMD ["a"]\nCMD ["b"]\nHEALTHCHECK NONE\nENTRYPOINT ["c"]\nFROM scratch\nCMD ["d"]\n'), [
    'MultipleInstructionsDisallowed@2: Multiple CMD instructions should not be used in the same stage because only the last one will be used',
  ]);
  assert.deepEqual(details('FROM scratch\nENV testkey value\nLABEL key value\nENV a=b\n'), [
    'LegacyKeyValueFormat@2: "ENV key=value" should be used instead of legacy "ENV key value" format',
    'LegacyKeyValueFormat@3: "LABEL key=value" should be used instead of legacy "LABEL key value" format',
  ]);
  assert.deepEqual(details('FROM scratch\nARG SECRET_PASSPHRASE\nENV SUPER_Secret=foo\nARG PUBLIC_KEY\nENV password=x\nARG TOKENIZER\nARG SECRET_FILE\nENV TOKEN_VERSION=1\n'), [
    'SecretsUsedInArgOrEnv@2: Do not use ARG or ENV instructions for sensitive data (ARG "SECRET_PASSPHRASE")',
    'SecretsUsedInArgOrEnv@3: Do not use ARG or ENV instructions for sensitive data (ENV "SUPER_Secret")',
    'SecretsUsedInArgOrEnv@5: Do not use ARG or ENV instructions for sensitive data (ENV "password")',
  ]);
  assert.deepEqual(details('FROM --platform=$TARGETPLATFORM scratch\nFROM --platform=${TARGETPLATFORM} scratch AS b\nFROM --platform=$BUILDPLATFORM scratch\n'), [
    'RedundantTargetPlatform@1: Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior',
    'RedundantTargetPlatform@2: Setting platform to predefined ${TARGETPLATFORM} in FROM is redundant as this is the default behavior',
  ]);
});

// The cases of BuildKit's dockerfile_check_test.go for the rules it added after v0.11.
test('lintDockerfile: InvalidDefaultArgInFrom expands FROM with the global ARGs\' defaults only', () => {
  const invalid = (image: string) => `InvalidDefaultArgInFrom@2: Default value for ARG ${image} results in empty or invalid base image name`;
  assert.deepEqual(details('ARG VERSION\nFROM busybox:$VERSION\n'), [invalid('busybox:$VERSION')]);
  assert.deepEqual(details('ARG IMAGE\nFROM $IMAGE\n'), [invalid('$IMAGE')]);
  assert.deepEqual(details('ARG SFX="box:"\nFROM busy${SFX}\n'), [invalid('busy${SFX}')]);
  assert.deepEqual(details('ARG VERSION="latest"\nFROM busybox:${VERSION}\n'), []);
  assert.deepEqual(details('ARG BUSYBOX_VARIANT=""\nFROM busybox:stable${BUSYBOX_VARIANT}\n'), []);
  assert.deepEqual(details('ARG BUSYBOX_VARIANT\nFROM busybox:stable${BUSYBOX_VARIANT}\n'), []);
  // Defaults expand with earlier global ARGs and the platform args; a stage name is a valid name.
  assert.deepEqual(details('ARG REG=127.0.0.1:5000\nARG IMG=$REG/app:${TARGETOS}\nFROM $IMG AS base\nFROM base\n'), []);
  assert.deepEqual(details('ARG N="Upper"\nFROM ${N}\n'), [invalid('${N}')]);
  // An ARG without a value keeps the earlier or built-in value (buildMetaArgs).
  assert.deepEqual(details('ARG TARGETOS\nARG T=1\nARG T\nFROM app:${TARGETOS}$T\n'), []);
  // An expansion error is the build's to report: the check gives up, as BuildKit's does.
  assert.deepEqual(details('ARG A\nFROM ${A:?unset}\n'), []);
});

test('lintDockerfile: FromPlatformFlagConstDisallowed, ExposeProtoCasing and ExposeInvalidFormat', () => {
  assert.deepEqual(details('FROM --platform=linux/amd64 scratch\n'), ['FromPlatformFlagConstDisallowed@1: FROM --platform flag should not use constant value "linux/amd64"']);
  assert.deepEqual(details('FROM --platform=linux/amd64 scratch AS my_amd64_stage\n'), []);
  assert.deepEqual(details('FROM --platform=linux/amd64 scratch AS linux\n'), []);
  // Normalised before the name is compared (aarch64 is arm64); no warning for what fails to parse or has variables.
  assert.deepEqual(details('FROM --platform=linux/aarch64 scratch AS build-arm64\n'), []);
  assert.deepEqual(details('FROM --platform="linux/arm64" scratch AS x\n'), ['FromPlatformFlagConstDisallowed@1: FROM --platform flag should not use constant value "linux/arm64"']);
  assert.deepEqual(details('FROM --platform=linux/a*b scratch\nFROM --platform=$BUILDPLATFORM scratch\n'), []);
  assert.deepEqual(details('FROM scratch\nEXPOSE 80/TcP 8080/TCP 8080/udp\n'), [
    "ExposeProtoCasing@2: Defined protocol '80/TcP' in EXPOSE instruction should be lowercase",
    "ExposeProtoCasing@2: Defined protocol '8080/TCP' in EXPOSE instruction should be lowercase",
  ]);
  assert.deepEqual(details('FROM scratch\nEXPOSE 127.0.0.1:80:80 [::1]:8080:8080 5000:5000 8000\n'), [
    "ExposeInvalidFormat@2: EXPOSE instruction should not define an IP address or host-port mapping, found '127.0.0.1:80:80'",
    "ExposeInvalidFormat@2: EXPOSE instruction should not define an IP address or host-port mapping, found '[::1]:8080:8080'",
    "ExposeInvalidFormat@2: EXPOSE instruction should not define an IP address or host-port mapping, found '5000:5000'",
  ]);
  assert.deepEqual(details('FROM scratch\nEXPOSE $P/TCP 80/bogus\n'), []);
});

test('parseCheckDirective: skip= and error=', () => {
  assert.deepEqual(parseCheckDirective('skip=A,B;error=true'), { skip: new Set(['A', 'B']), all: false, error: true });
  assert.deepEqual(parseCheckDirective('skip=all'), { skip: new Set(['all']), all: true, error: false });
});

test('lintBuild: warnings as BuildKit\'s short form, dispatch-time rules only in the stages built, error=true fails the build', () => {
  const df = parse('FROM alpine as base\nCMD echo base\nFROM alpine AS unused\nWORKDIR rel\nFROM base\nENV k v\n');
  const all = new Set([0, 1, 2]);
  assert.deepEqual(lintBuild(df, undefined, new Set([0, 2])), {
    warnings: [
      { message: "FromAsCasing: 'as' and 'FROM' keywords' casing do not match", line: 1 },
      { message: 'JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals', line: 2 },
      { message: 'LegacyKeyValueFormat: "ENV key=value" should be used instead of legacy "ENV key value" format', line: 6 },
    ],
  }, 'the unused stage\'s WORKDIR is never dispatched');
  assert.equal(lintBuild(df, undefined, all).warnings.length, 4);
  const strict = parse('# check=error=true\nFROM alpine as base\nMAINTAINER me\n');
  assert.equal(lintBuild(strict, undefined, new Set([0])).error, 'lint violation found for rules: FromAsCasing, MaintainerDeprecated');
  assert.equal(lintBuild(strict, 'skip=FromAsCasing,MaintainerDeprecated;error=true', new Set([0])).error, undefined, 'BUILDKIT_DOCKERFILE_CHECK wins over the directive');
  assert.deepEqual(lintBuild(strict, 'skip=all', new Set([0])), { warnings: [] });
  assert.deepEqual(lintBuild(parse('# check=error=true\nFROM alpine\nCMD ["x"]\n'), undefined, new Set([0])), { warnings: [] });
});

test('lintBuild on an attacker\'s Dockerfile (thousands of CMDs in a stage, thousands of undefined FROM args against thousands of long ARG names) answers', () => {
  const long = 'A'.repeat(200);
  const lines = [...Array.from({ length: 3_000 }, (_, i) => `ARG ${long}${i}`), 'FROM busybox', ...Array.from({ length: 30_000 }, () => 'CMD ["x"]')];
  for (let i = 0; i < 3_000; i++) lines.push(`FROM \${${long}x${i}:-busybox}`);
  const df = parse(`${lines.join('\n')}\n`);
  const { warnings } = lintBuild(df, undefined, new Set([0]));
  assert.equal(warnings.filter((w) => w.message.startsWith('MultipleInstructionsDisallowed')).length, 29_999);
  const undefinedArgs = warnings.filter((w) => w.message.startsWith('UndefinedArgInFrom'));
  assert.equal(undefinedArgs.length, 3_000);
  assert.match(undefinedArgs[0].message, /\(did you mean A+0\?\)$/);
  assert.doesNotMatch(undefinedArgs[2_999].message, /did you mean/, 'hints stop after the first few');
});
