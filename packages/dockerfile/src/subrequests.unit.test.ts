// The subrequests' result metadata, as BuildKit's ToResult functions write it (outline.go,
// targets.go, lint.go, describe.go); the printed answers are tested through the CLI
// (client/callSubrequests.unit.test.ts) and against buildkitd (test/e2e/buildkitSubrequests.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerSubrequest, subrequestMetadata, SubrequestError } from './subrequests.js';

const input = (dockerfile: string, target?: string) => ({ dockerfile, dockerfileName: 'Dockerfile', target });

test('describe lists what the Dockerfile frontend answers (outline, targets, describe), as dockerui\'s describe and PrintDescribe', () => {
  const meta = subrequestMetadata(answerSubrequest('frontend.subrequests.describe', input('')));
  assert.deepEqual(Object.keys(meta), ['result.json', 'result.txt', 'version']);
  assert.equal(meta['result.txt']!.toString(), [
    'NAME                 VERSION DESCRIPTION',
    'outline              1.0.0   List all parameters current build target supports',
    'targets              1.0.0   List all targets current build supports',
    'subrequests.describe 1.0.0   List available subrequest types',
    '',
  ].join('\n'));
  const described = JSON.parse(meta['result.json']!.toString()) as { name: string; opts: unknown; inputs: unknown; metadata: unknown }[];
  assert.deepEqual(described[0], {
    name: 'frontend.outline', version: '1.0.0', type: 'rpc', description: 'List all parameters current build target supports',
    opts: [{ name: 'target', description: 'Target build stage' }], inputs: null, metadata: [{ name: 'result.json', description: '' }, { name: 'result.txt', description: '' }], refs: null,
  });
  assert.equal(described[2]!.opts, null, 'a nil slice in Go');
});

test('lint carries result.statuscode (1 with warnings, 0 without); outline and targets do not', () => {
  const warned = subrequestMetadata(answerSubrequest('frontend.lint', input('FROM busybox as base\n')));
  assert.equal(warned['result.statuscode']!.toString(), '1');
  assert.equal(JSON.parse(warned['result.json']!.toString()).warnings[0].ruleName, 'FromAsCasing');
  assert.equal(subrequestMetadata(answerSubrequest('frontend.lint', input('FROM busybox AS base\n')))['result.statuscode']!.toString(), '0');
  for (const name of ['frontend.outline', 'frontend.targets']) {
    assert.deepEqual(Object.keys(subrequestMetadata(answerSubrequest(name, input('FROM busybox\n')))), ['result.json', 'result.txt', 'version']);
  }
});

test('an unknown subrequest or target is a SubrequestError with BuildKit\'s words', () => {
  assert.throws(() => answerSubrequest('frontend.convertllb', input('FROM busybox\n')), (e: unknown) => e instanceof SubrequestError && e.message === 'unsupported request frontend.convertllb');
  assert.throws(() => answerSubrequest('frontend.outline', input('FROM busybox AS a\n', 'b')), (e: unknown) => e instanceof SubrequestError && /^target stage "b" could not be found in Dockerfile/.test(e.message));
});

test('outline lists args as current BuildKit does: a stage ARG inheriting a global value keeps the global definition', () => {
  const args = (dockerfile: string, buildArgs: Record<string, string> = {}) => {
    const meta = subrequestMetadata(answerSubrequest('frontend.outline', { ...input(dockerfile), buildArgs }));
    return (JSON.parse(meta['result.json']!.toString()).args ?? []).map((a: { name: string; value?: string; location: { ranges: { start: { line: number } }[] } }) =>
      `${a.name}${a.value === undefined ? '' : `=${a.value}`}@${a.location.ranges[0]!.start.line}`);
  };
  // buildMetaArgs: a later value-less global ARG is the definition listed (empty), though V keeps 1.
  assert.deepEqual(args('ARG V=1\nARG V\nFROM busybox\nARG V\n'), ['V@2']);
  assert.deepEqual(args('ARG V=1\nFROM busybox\nARG V\n'), ['V=1@1']);
  // No global value to inherit: the stage's own ARG is listed.
  assert.deepEqual(args('ARG V\nFROM busybox\nARG V\n'), ['V@3']);
  // A build arg makes the stage's ARG its own definition.
  assert.deepEqual(args('ARG V=1\nFROM busybox\nARG V\n', { V: '9' }), ['V=9@3']);
  // Platform args are global values: redeclared in a stage they are not listed.
  assert.deepEqual(args('FROM busybox\nARG TARGETPLATFORM\nARG X\n'), ['X@3']);
  // A stage based on another sees that stage's definitions; COPY --from stages are listed too.
  assert.deepEqual(args('ARG V=1\nFROM busybox AS a\nARG V=2\nFROM a\nARG V\n'), ['V=2@3']);
  assert.deepEqual(args('FROM busybox AS a\nARG A=1\nFROM busybox\nARG B\nCOPY --from=a / /\n'), ['A=1@2', 'B@4']);
});
