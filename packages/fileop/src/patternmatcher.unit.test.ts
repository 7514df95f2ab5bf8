import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileDockerignore, dockerignoreExcludes, parseDockerignore, DockerignorePatternError } from './index.js';

test('parseDockerignore trims, drops comments, cleans paths and leading slashes', () => {
  const text = '\uFEFF# comment\n  \n*/temp*\n/foo/../bar/\n ! keep.md \n  # not a comment once indented\n./a//b\n';
  assert.deepEqual(parseDockerignore(text), ['*/temp*', 'bar', '!keep.md', '# not a comment once indented', 'a/b']);
});

test('Docker documented examples: */temp*, */*/temp*, temp?', () => {
  const p = ['*/temp*', '*/*/temp*', 'temp?'];
  assert.equal(dockerignoreExcludes(p, 'somedir/temporary.txt'), true);
  assert.equal(dockerignoreExcludes(p, 'somedir/temp'), true);
  assert.equal(dockerignoreExcludes(p, 'somedir/subdir/temporary.txt'), true);
  assert.equal(dockerignoreExcludes(p, 'tempa'), true);
  assert.equal(dockerignoreExcludes(p, 'tempab'), false);
  assert.equal(dockerignoreExcludes(p, 'temporary.txt'), false);
});

test('** matches any number of directories', () => {
  const p = ['**/*.go'];
  assert.equal(dockerignoreExcludes(p, 'main.go'), true);
  assert.equal(dockerignoreExcludes(p, 'a/b/c/main.go'), true);
  assert.equal(dockerignoreExcludes(p, 'a/b/main.goo'), false);
  assert.equal(dockerignoreExcludes(['dir/**'], 'dir/x/y'), true);
  assert.equal(dockerignoreExcludes(['dir/**'], 'dir'), false, 'dir/** excludes the contents, not dir itself');
  assert.equal(dockerignoreExcludes(['**/foo'], 'barfoo'), true, 'suffix-match quirk of moby/patternmatcher');
  assert.equal(dockerignoreExcludes(['a/**/b'], 'a/b'), true);
  assert.equal(dockerignoreExcludes(['a/**/b'], 'a/x/y/b'), true);
});

test('exceptions with ! re-include, last match wins', () => {
  const p = parseDockerignore('*.md\n!README*.md\nREADME-secret.md\n');
  assert.equal(dockerignoreExcludes(p, 'CHANGES.md'), true);
  assert.equal(dockerignoreExcludes(p, 'README.md'), false);
  assert.equal(dockerignoreExcludes(p, 'README-secret.md'), true);
  const q = parseDockerignore('*.md\nREADME-secret.md\n!README*.md\n');
  assert.equal(dockerignoreExcludes(q, 'README-secret.md'), false);
});

test('a pattern matching a parent directory excludes everything below', () => {
  assert.equal(dockerignoreExcludes(['node_modules'], 'node_modules/a/b.js'), true);
  assert.equal(dockerignoreExcludes(['node_modules'], 'src/node_modules/a.js'), false);
  assert.equal(dockerignoreExcludes(parseDockerignore('/build'), 'build/out'), true);
  assert.equal(dockerignoreExcludes(['*'], 'a/b/c'), true);
  assert.equal(dockerignoreExcludes(['*', '!src'], 'src/deep/file.ts'), false);
  assert.equal(dockerignoreExcludes(['*', '!src', 'src/gen'], 'src/gen/x.ts'), true);
});

test('character classes and escapes', () => {
  assert.equal(dockerignoreExcludes(['file[0-9].txt'], 'file7.txt'), true);
  assert.equal(dockerignoreExcludes(['file[0-9].txt'], 'filex.txt'), false);
  assert.equal(dockerignoreExcludes(['file[^0-9].txt'], 'filex.txt'), true);
  assert.equal(dockerignoreExcludes(['[a]\\*b'], 'a*b'), true);
  assert.equal(dockerignoreExcludes(['[a]\\*b'], 'axb'), false);
  // patternmatcher quirk: an escape alone keeps the pattern an exact (unescaped) string compare.
  assert.equal(dockerignoreExcludes(['a\\*b'], 'a*b'), false);
  assert.equal(dockerignoreExcludes(['a.b'], 'axb'), false, '. is literal');
});

test('invalid patterns are rejected with an actionable error', () => {
  assert.throws(() => compileDockerignore(['[abc']), DockerignorePatternError);
  assert.throws(() => compileDockerignore(['!']), /illegal exclusion/);
});

test('mayMatchInside tells a walker when an excluded directory must still be walked', () => {
  const m = compileDockerignore(parseDockerignore('vendor\n!vendor/keep/*.go\nbuild\n'));
  assert.equal(m.excludes('vendor'), true);
  assert.equal(m.mayMatchInside('vendor'), true);
  assert.equal(m.mayMatchInside('vendor/keep'), true);
  assert.equal(m.mayMatchInside('vendor/other'), false);
  assert.equal(m.mayMatchInside('build'), false);
  assert.equal(m.excludes('vendor/keep/a.go'), false);
  assert.equal(m.excludes('vendor/other/a.go'), true);
  const n = compileDockerignore(['**', '!**/*.keep']);
  assert.equal(n.mayMatchInside('x/y/z'), true);
  assert.equal(compileDockerignore(['a']).mayMatchInside('a'), false);
});
