import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

test('testWorkDir\'s directories are gone once the process that made them exits, whatever they hold', () => {
  const script = `
    import { mkdirSync, writeFileSync, symlinkSync, chmodSync } from 'node:fs';
    import { testWorkDir } from ${JSON.stringify(new URL('./testWorkDir.ts', import.meta.url).href)};
    const a = testWorkDir('buildyard-testkit-workdir-');
    const b = testWorkDir('buildyard-testkit-workdir-');
    mkdirSync(a + '/deep/er', { recursive: true });
    writeFileSync(a + '/deep/er/file', 'x');
    symlinkSync('/etc', a + '/link-out');
    chmodSync(a + '/deep', 0o500);
    console.log(JSON.stringify([a, b]));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
  const dirs = JSON.parse(out) as string[];
  assert.equal(dirs.length, 2);
  for (const dir of dirs) assert.equal(existsSync(dir), false, `${dir} was removed`);
  assert.ok(existsSync('/etc/hostname') || existsSync('/etc/passwd'), 'a link out of the directory is removed, not followed');
});
