// Frontend subrequests through the BuildKit endpoint (`requestid`: buildx's --call/--check, and
// v0.10's experimental --print): answered from the Dockerfile as BuildKit's Dockerfile frontend
// answers them, with no build. buildx v0.10.5 asks for outline and targets over the gateway, side
// by side with the reference buildkitd v0.11.6, and buildctl prints their result.txt; lint
// (newer than v0.11.6) is held to current BuildKit's printer (lint.go's Warning.PrintTo).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { buildkit } from '@buildyard/proto';
import { referenceTools } from '@buildyard/testkit';
import { startComparison, type Comparison, type Run } from './buildxComparison.js';

const tools = referenceTools('docker-buildx', 'buildkitd', 'buildctl');
const skip = tools.missing ?? false;
let c: Comparison;
let dir: string;

before(async () => {
  if (skip) return;
  c = await startComparison(tools.paths['docker-buildx']!, 1);
  dir = join(c.work, 'subrequests');
  mkdirSync(dir);
  // A build of it would fail at once: an answer proves nothing ran.
  writeFileSync(join(dir, 'Dockerfile'), [
    `ARG BASE=${c.cluster.busybox.reference}`,
    '',
    '# deps Fetches the dependencies',
    'FROM ${BASE} AS deps',
    '# VERSION the version to fetch',
    'ARG VERSION=1.2',
    'RUN --mount=type=secret,id=token,required=true --mount=type=ssh false',
    '',
    '# release The image to ship',
    'FROM deps as release',
    'ARG LEVEL',
    'COPY --from=deps /etc/passwd /passwd',
    'RUN false',
    '',
  ].join('\n'));
});
after(async () => { await c?.stop(); });

function buildx(builder: string, ...flags: string[]): Promise<Run> {
  return c.buildx('--builder', builder, 'build', '--progress', 'plain', ...flags, dir);
}

function buildctl(addr: string, args: string[]): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(tools.paths.buildctl!, ['--addr', addr, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`, ...args], (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('buildx --print outline and targets (v0.10.5, experimental) print what they print against buildkitd, and nothing is built', { skip }, async () => {
  process.env.BUILDX_EXPERIMENTAL = '1';
  for (const flags of [['--print', 'outline'], ['--print', 'outline', '--target', 'deps', '--build-arg', 'VERSION=9'], ['--print', 'targets']]) {
    const reference = await buildx('reference', ...flags);
    const ours = await buildx('ours', ...flags);
    assert.equal(reference.code, 0, reference.stderr);
    assert.equal(ours.code, 0, ours.stderr);
    assert.equal(ours.stdout, reference.stdout, flags.join(' '));
  }
  const targets = await buildx('ours', '--print', 'targets');
  assert.match(targets.stdout, /^TARGET +DESCRIPTION\ndeps +Fetches the dependencies\nrelease \(default\) +The image to ship\n$/);
  assert.doesNotMatch((await buildx('ours', '--print', 'outline')).stderr, /RUN false/, 'no step ran');
});

test('buildctl: an unknown subrequest fails as on buildkitd, outline prints the same, lint prints current BuildKit\'s warnings', { skip }, async () => {
  for (const addr of [c.buildkitd.addr, c.cluster.buildkit!]) {
    const unknown = await buildctl(addr, ['--opt', 'requestid=frontend.nope']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unsupported request frontend\.nope/, addr);
  }
  // buildctl prints a subrequest's result.txt: the same outline from both.
  const outlines = await Promise.all([c.buildkitd.addr, c.cluster.buildkit!].map((addr) => buildctl(addr, ['--opt', 'requestid=frontend.outline', '--opt', 'target=release'])));
  for (const r of outlines) assert.equal(r.code, 0, r.stderr);
  assert.equal(outlines[1]!.stdout, outlines[0]!.stdout);
  assert.match(outlines[0]!.stdout, /^TARGET:\s+release\n/);
  const lint = await buildctl(c.cluster.buildkit!, ['--opt', 'requestid=frontend.lint']);
  assert.equal(lint.code, 0, lint.stderr);
  assert.equal(lint.stdout, [
    '',
    'WARNING: FromAsCasing - https://docs.docker.com/go/dockerfile/rule/from-as-casing/',
    "'as' and 'FROM' keywords' casing do not match",
    'Dockerfile:10',
    '--------------------',
    '   8 |     ',
    '   9 |     # release The image to ship',
    '  10 | >>> FROM deps as release',
    '  11 |     ARG LEVEL',
    '  12 |     COPY --from=deps /etc/passwd /passwd',
    '--------------------',
    '',
  ].join('\n'));
});

test('a Control.Solve naming dockerfile.v0 itself gets the answer in its exporter response (describe needs no session)', { skip }, async () => {
  const control = new buildkit.ControlClient(c.cluster.buildkit!.replace('tcp://', ''), credentials.createInsecure());
  try {
    const response = await new Promise<buildkit.SolveResponse>((resolve, reject) => control.solve(
      buildkit.SolveRequest.fromPartial({ Ref: `describe-${process.pid}`, Frontend: 'dockerfile.v0', FrontendAttrs: { requestid: 'frontend.subrequests.describe' } }),
      (err, res) => (err ? reject(err) : resolve(res!))));
    assert.match(response.ExporterResponse['result.txt'] ?? '', /^NAME +VERSION DESCRIPTION\noutline +1\.0\.0 +List all parameters current build target supports\n/);
    assert.equal(response.ExporterResponse.version, '1.0.0');
  } finally {
    control.close();
  }
});
