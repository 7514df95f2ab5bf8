import { test } from 'node:test';
import assert from 'node:assert/strict';
import { preconnectTarget } from './preconnectArgs.js';

test('preconnectTarget: the builder of a build, nothing for help, --call, --check or other commands', () => {
  assert.deepEqual(preconnectTarget(['build', '.']), { builder: undefined });
  assert.deepEqual(preconnectTarget(['build', '-t', 'x', '--builder', 'prod', '.']), { builder: 'prod' });
  assert.deepEqual(preconnectTarget(['build', '--builder=tcp://127.0.0.1:1', '.']), { builder: 'tcp://127.0.0.1:1' });
  // After --, everything is an argument.
  assert.deepEqual(preconnectTarget(['build', '--', '--builder', 'x']), { builder: undefined });
  for (const args of [['build', '--help'], ['build', '.', '-h'], ['build', '--check', '.'], ['build', '--call', 'outline'], ['build', '--call=targets'], ['--help'], ['bake'], ['builder', 'ls'], []]) {
    assert.equal(preconnectTarget(args), undefined, args.join(' '));
  }
});
