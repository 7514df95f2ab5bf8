// `buildyard build --call targets` and `--check` through the real CLI (issue 20). No cluster: the
// subrequests are answered from the Dockerfile on this machine, which this test also shows (the
// builder named in the environment does not exist, and the answer comes anyway).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { appCommand, testWorkDir } from '@buildyard/testkit';

function cli(args: string[], cwd: string): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, appCommand('cli', ...args), {
    cwd, encoding: 'utf8', timeout: 120_000,
    env: { ...process.env, XDG_CONFIG_HOME: join(cwd, 'config'), BUILDYARD_BUILDER: 'tcp://127.0.0.1:1' },
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

test('build --call targets lists the stages; --check exits 1 on a warning and 0 on a clean Dockerfile', () => {
  const work = testWorkDir('buildyard-call-e2e-');
  writeFileSync(join(work, 'Dockerfile'), '# base The base stage\nFROM alpine as base\nFROM base AS app\n');
  writeFileSync(join(work, 'Clean.Dockerfile'), 'FROM alpine\nCMD ["true"]\n');

  const targets = cli(['build', '--call', 'targets', '.'], work);
  assert.equal(targets.status, 0, targets.stderr);
  assert.equal(targets.stdout, 'TARGET        DESCRIPTION\nbase          The base stage\napp (default) \n');

  const check = cli(['build', '--check', '.'], work);
  assert.equal(check.status, 1, check.stderr);
  assert.match(check.stdout, /^\nWARNING: FromAsCasing - https:\/\/docs\.docker\.com\/go\/dockerfile\/rule\/from-as-casing\/\n'as' and 'FROM' keywords' casing do not match\nDockerfile:2\n/);
  assert.match(check.stdout, /\nCheck complete, 1 warning has been found!\n$/);

  const clean = cli(['build', '--check', '-f', 'Clean.Dockerfile', '.'], work);
  assert.deepEqual([clean.status, clean.stdout], [0, 'Check complete, no warnings found.\n']);
});
