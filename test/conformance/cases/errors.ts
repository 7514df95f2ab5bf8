// User errors and their wording (BuildKit's parser testfiles and dockerfile_test.go error cases).
import type { Case } from '../lib/types.js';
import { allHistory, argHistory, chain, chmodParents, copyFlagsHistory, error, FLAG_PREFIX_CHANGE, HEALTH_CHANGE, healthHistory, heredocMode, historyAt } from './upstream.js';

export const cases: Case[] = [
  { name: 'unknown-instruction', dockerfile: 'FROM {{BASE}}\nFRM x\n' },
  { name: 'unknown-instruction-suggest', dockerfile: 'FROM {{BASE}}\nCOPPY a b\n' },
  { name: 'no-from', upstream: { change: 'v0.11.6 crashes on a Dockerfile of global ARGs only (fixed in v0.15); convert.go: "dockerfile contains no stages to build"', expect: error('dockerfile contains no stages to build') }, dockerfile: 'ARG A=1\n' },
  { name: 'instruction-before-from', dockerfile: 'RUN true\nFROM {{BASE}}\n' },
  { name: 'from-bad-args', dockerfile: 'FROM {{BASE}} AS\n' },
  { name: 'stage-name-invalid', dockerfile: 'FROM {{BASE}} AS 1bad\n' },
  { name: 'stage-name-duplicate', upstream: { change: 'a duplicate stage name is the DuplicateStageName lint warning (validations.go), not an error', patch: (r) => r }, dockerfile: 'FROM {{BASE}} AS a\nFROM {{BASE}} AS a\n' },
  { name: 'target-not-found', upstream: { change: 'convert.go resolveTarget quotes the name and adds suggest.WrapError', expect: error('target stage "biuld" could not be found (did you mean build?)') }, dockerfile: 'FROM {{BASE}} AS build\nFROM {{BASE}} AS final\n', target: 'biuld' },
  { name: 'target-selects-stage', dockerfile: 'FROM {{BASE}} AS build\nRUN touch /built\nFROM {{BASE}} AS final\nRUN touch /final\n', target: 'build' },
  { name: 'from-earlier-stage', dockerfile: 'FROM {{BASE}} AS a\nRUN touch /a\nFROM a AS b\nRUN touch /b\n' },
  { name: 'shell-not-json', dockerfile: 'FROM {{BASE}}\nSHELL /bin/bash -c\n' },
  { name: 'env-missing-value', dockerfile: 'FROM {{BASE}}\nENV ONLYKEY\n' },
  { name: 'healthcheck-bad-type', dockerfile: 'FROM {{BASE}}\nHEALTHCHECK FOO true\n' },
  { name: 'healthcheck-bad-duration', dockerfile: 'FROM {{BASE}}\nHEALTHCHECK --interval=5 CMD true\n' },
  { name: 'healthcheck-too-short', dockerfile: 'FROM {{BASE}}\nHEALTHCHECK --interval=1ns CMD true\n' },
  { name: 'expose-invalid', upstream: { change: 'convert_expose.go (port parsing moved from go-connections): invalid port: %q: invalid proto', expect: error('invalid port: "80/xyz": invalid proto: xyz') }, dockerfile: 'FROM {{BASE}}\nEXPOSE 80/xyz\n' },
  { name: 'expose-invalid-port', upstream: { change: 'convert_expose.go (port parsing moved from go-connections): lower-case "invalid containerPort"', expect: error('invalid containerPort: abc') }, dockerfile: 'FROM {{BASE}}\nEXPOSE abc\n' },
  { name: 'onbuild-onbuild', dockerfile: 'FROM {{BASE}}\nONBUILD ONBUILD RUN true\n' },
  { name: 'onbuild-from', dockerfile: 'FROM {{BASE}}\nONBUILD FROM x\n' },
  { name: 'escape-directive-invalid', dockerfile: '# escape=x\nFROM {{BASE}}\n' },
  { name: 'copy-one-arg', dockerfile: 'FROM {{BASE}}\nCOPY onlyone\n' },
  { name: 'flag-bool-bad-value', upstream: { change: FLAG_PREFIX_CHANGE, expect: error('expecting boolean value for flag --link, not: maybe') }, dockerfile: 'FROM {{BASE}}\nCOPY --link=maybe a b\n', files: { a: 'a' } },
  { name: 'from-platform-flag-bad', dockerfile: 'FROM --platform=linux/nonsense {{BASE}}\n' },
  { name: 'empty-continuation-warns-only', dockerfile: 'FROM {{BASE}}\nRUN echo a \\\n\n  b > /o\n' },
  { name: 'json-non-string', dockerfile: 'FROM {{BASE}}\nCMD ["a", 1]\n' },
];
