import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandWord, expandWords, WordExpansionError } from './index.js';

const env = { NAME: 'world', EMPTY: '', PATH_V: '/usr/local/bin/app.tar.gz', SPACED: 'a  b c' };

test('plain and braced variables, unset is empty', () => {
  assert.equal(expandWord('hello $NAME', env), 'hello world');
  assert.equal(expandWord('${NAME}s', env), 'worlds');
  assert.equal(expandWord('$UNSET-x', env), '-x');
  assert.equal(expandWord('cost: $', env), 'cost: $');
  assert.equal(expandWord('$1x', env), 'x', 'positional $1 is empty');
});

test(':- - :+ + modifiers distinguish unset from empty', () => {
  assert.equal(expandWord('${EMPTY:-def}', env), 'def');
  assert.equal(expandWord('${EMPTY-def}', env), '');
  assert.equal(expandWord('${UNSET-def}', env), 'def');
  assert.equal(expandWord('${NAME:-def}', env), 'world');
  assert.equal(expandWord('${NAME:+alt}', env), 'alt');
  assert.equal(expandWord('${EMPTY:+alt}', env), '');
  assert.equal(expandWord('${EMPTY+alt}', env), 'alt');
  assert.equal(expandWord('${UNSET+alt}', env), '');
  assert.equal(expandWord('${UNSET:-${NAME:-x}}', env), 'world', 'nested');
});

test(':? and ? fail with the message', () => {
  assert.throws(() => expandWord('${UNSET:?must be set}', env), /UNSET: must be set/);
  assert.throws(() => expandWord('${EMPTY:?}', env), /EMPTY: is not allowed to be empty/);
  assert.throws(() => expandWord('${UNSET?}', env), /UNSET: is not allowed to be unset/);
  assert.equal(expandWord('${EMPTY?x}', env), '');
});

test('# ## % %% trim prefix/suffix shortest and longest', () => {
  assert.equal(expandWord('${PATH_V#*/}', env), 'usr/local/bin/app.tar.gz');
  assert.equal(expandWord('${PATH_V##*/}', env), 'app.tar.gz');
  assert.equal(expandWord('${PATH_V%.*}', env), '/usr/local/bin/app.tar');
  assert.equal(expandWord('${PATH_V%%.*}', env), '/usr/local/bin/app');
  assert.equal(expandWord('${PATH_V#nomatch}', env), env.PATH_V);
});

test('/ and // replace first and all matches', () => {
  assert.equal(expandWord('${PATH_V/\\//-}', env), '-usr/local/bin/app.tar.gz');
  assert.equal(expandWord('${PATH_V//\\//-}', env), '-usr-local-bin-app.tar.gz');
  assert.equal(expandWord('${NAME/o*/0}', env), 'w0');
  assert.equal(expandWord('${NAME//o/0}', env), 'w0rld');
});

test('quotes and escapes', () => {
  assert.equal(expandWord("'$NAME'", env), '$NAME');
  assert.equal(expandWord('"$NAME \'q\'"', env), "world 'q'");
  assert.equal(expandWord('\\$NAME', env), '$NAME');
  assert.equal(expandWord('"\\$NAME \\"x\\" \\a"', env), '$NAME "x" \\a');
  assert.equal(expandWord('`$NAME', env, { escape: '`' }), '$NAME');
  assert.equal(expandWord('\\$NAME', env, { escape: '`' }), '\\world');
  assert.equal(expandWord('a\\ b', env), 'a b');
});

test('expandWords splits on unquoted whitespace, including from values', () => {
  assert.deepEqual(expandWords('a $SPACED "c d"', env), ['a', 'a', 'b', 'c', 'c d']);
  assert.deepEqual(expandWords('"$SPACED"', env), ['a  b c']);
  assert.deepEqual(expandWords('x\\ y z', env), ['x y', 'z']);
  assert.deepEqual(expandWords('', env), []);
});

test('syntax errors are WordExpansionError', () => {
  for (const bad of ['${NAME', '${}', '${:x}', '"open', "'open", '${NAME:x}', '${NAME/x}', '${NAME:#x}']) {
    assert.throws(() => expandWord(bad, env), WordExpansionError, bad);
  }
});

test('Map env and deep nesting limit', () => {
  assert.equal(expandWord('$A', new Map([['A', 'b']])), 'b');
  const deep = '${A:-'.repeat(5000) + 'x' + '}'.repeat(5000);
  assert.throws(() => expandWord(deep, {}), /nested too deeply/);
  const ok = '${A:-'.repeat(50) + 'x' + '}'.repeat(50);
  assert.equal(expandWord(ok, {}), 'x');
});
