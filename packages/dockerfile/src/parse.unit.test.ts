import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, DockerfileError } from './index.js';

function only(text: string) {
  return parse(text).instructions;
}

function throwsAt(text: string, line: number, re: RegExp): void {
  assert.throws(() => parse(text), (e: unknown) => {
    assert.ok(e instanceof DockerfileError, String(e));
    assert.equal(e.line, line, e.message);
    assert.match(e.message, re);
    return true;
  });
}

test('directives only before the first instruction, comment or blank line', () => {
  const r = parse('# syntax=docker/dockerfile:1\n#check=skip=all\n# escape=`\nFROM a\nRUN x `\n  y\n');
  assert.deepEqual(r.directives.map((d) => [d.name, d.value, d.line]), [['syntax', 'docker/dockerfile:1', 1], ['check', 'skip=all', 2], ['escape', '`', 3]]);
  assert.equal(r.escape, '`');
  assert.deepEqual(r.stages[0].instructions[0].args, ['x   y']);
  const late = parse('# hello\n# escape=`\nFROM a\nRUN x \\\n y\n');
  assert.equal(late.directives.length, 0);
  assert.equal(late.escape, '\\');
  assert.deepEqual(late.stages[0].instructions[0].args, ['x  y']);
  const afterBlank = parse('\n# escape=`\nFROM a\n');
  assert.equal(afterBlank.directives.length, 0);
  throwsAt('# escape=x\nFROM a\n', 1, /invalid escape token/);
  throwsAt('# syntax=a\n# syntax=b\nFROM a\n', 2, /only one syntax parser directive/);
});

test('continuations skip comment and empty lines, keep line numbers and original text', () => {
  const r = parse('FROM a\nRUN echo a \\\n  # inner comment\n\n  b \\\n  c\nRUN d\n');
  const run = r.stages[0].instructions[0];
  assert.equal(run.startLine, 2);
  assert.equal(run.endLine, 6);
  assert.equal(run.args[0], 'echo a   b   c');
  assert.equal(run.text, 'RUN echo a \\\n  # inner comment\n\n  b \\\n  c');
  assert.equal(r.stages[0].instructions[1].startLine, 7);
  assert.equal(r.warnings.length, 1, 'empty continuation line warns');
  assert.equal(parse('FROM a\r\nRUN b \\\r\n c\r\n').stages[0].instructions[0].args[0], 'b  c', 'CRLF');
});

test('instruction names are case-insensitive; unknown ones get did-you-mean', () => {
  assert.deepEqual(only('from a\nrun b\nWorkDir /x\n').map((i) => i.keyword), ['FROM', 'RUN', 'WORKDIR']);
  throwsAt('FRM alpine\n', 1, /^Dockerfile:1: unknown instruction: FRM \(did you mean FROM\?\)$/);
  throwsAt('FROM a\n\nCOPPY a b\n', 3, /did you mean COPY/);
  throwsAt('FROM a\nFOOBARBAZ x\n', 2, /unknown instruction: FOOBARBAZ$/);
  assert.throws(() => parse('FRM a', { file: 'app.Dockerfile' }), /^DockerfileError: app.Dockerfile:1:|app.Dockerfile:1: unknown/);
});

test('JSON vs shell form, invalid JSON falls back to shell form', () => {
  const [, run, cmd, ent, bad] = only('FROM a\nRUN ["echo", "a  b"]\nCMD echo  hi\nENTRYPOINT ["x"]\nCMD ["a", ]\n');
  assert.equal(run.json, true);
  assert.deepEqual(run.args, ['echo', 'a  b']);
  assert.equal(cmd.json, false);
  assert.deepEqual(cmd.args, ['echo  hi']);
  assert.equal(ent.json, true);
  assert.equal(bad.json, false);
  assert.deepEqual(bad.args, ['["a", ]']);
  throwsAt('FROM a\nCMD [1, 2]\n', 2, /arrays must be comprised of strings only/);
  throwsAt('FROM a\nSHELL /bin/bash -c\n', 2, /SHELL requires the arguments to be in JSON form/);
});

test('flags: values, quotes, booleans, lists, -- terminator, unknown and duplicate flags', () => {
  const [from, copy, run, copy2] = only('FROM --platform=$BUILDPLATFORM a AS b\nCOPY --from=b --chown="1:1" --link --exclude=*.md --exclude=x a /d/\nRUN --mount=type=cache,target=/c --mount=type=tmpfs,target=/t --network=none --security=insecure make\nCOPY -- --weird /d\n');
  assert.deepEqual(from.flags, [{ name: 'platform', value: '$BUILDPLATFORM' }]);
  assert.deepEqual(from.args, ['a', 'AS', 'b']);
  assert.deepEqual(copy.flags.map((f) => [f.name, f.value]), [['from', 'b'], ['chown', '1:1'], ['link', undefined], ['exclude', '*.md'], ['exclude', 'x']]);
  assert.deepEqual(copy.args, ['a', '/d/']);
  assert.equal(run.flags.filter((f) => f.name === 'mount').length, 2);
  assert.deepEqual(run.args, ['make']);
  assert.deepEqual(copy2.args, ['--weird', '/d']);
  assert.deepEqual(copy2.flags, []);
  throwsAt('FROM a\nCOPY --form=b a b\n', 2, /unknown flag: --form \(did you mean from\?\)/);
  throwsAt('FROM a\nRUN --from=x y\n', 2, /unknown flag: --from/);
  throwsAt('FROM a\nCOPY --from=a --from=b x y\n', 2, /duplicate flag/);
  throwsAt('FROM a\nCOPY --link=maybe x y\n', 2, /expecting boolean value/);
  throwsAt('FROM a\nCOPY --chown x y\n', 2, /missing a value/);
  const add = only('FROM a\nADD --chown=a --chmod=755 --checksum=sha256:x --keep-git-dir=true --link --exclude=a --unpack=false s d\n')[1];
  assert.deepEqual(add.flags.map((f) => f.name), ['chown', 'chmod', 'checksum', 'keep-git-dir', 'link', 'exclude', 'unpack']);
  const hc = only('FROM a\nHEALTHCHECK --interval=5s --timeout=3s --start-period=1s --start-interval=1s --retries=3 CMD curl -f http://x/\n')[1];
  assert.deepEqual(hc.args, ['CMD', 'curl -f http://x/']);
  assert.equal(hc.flags.length, 5);
});

test('heredocs: several per instruction, <<- strips tabs, quoted delimiters disable expansion', () => {
  const text = 'FROM a\nRUN <<EOF\necho hi\nEOF\nRUN cat <<A <<-"B" > /x\n  one\nA\n\t\ttwo\n\tB\nCOPY <<-EOT /etc/conf\n\tk=v\n\tEOT\nRUN echo done\n';
  const [, r1, r2, c, last] = only(text);
  assert.deepEqual(r1.heredocs, [{ name: 'EOF', content: 'echo hi\n', expand: true, chomp: false, fileDescriptor: 0 }]);
  assert.equal(r1.endLine, 4);
  assert.deepEqual(r2.heredocs.map((h) => [h.name, h.content, h.expand, h.chomp]), [['A', '  one\n', true, false], ['B', 'two\n', false, true]]);
  assert.deepEqual(c.heredocs.map((h) => [h.name, h.content]), [['EOT', 'k=v\n']]);
  assert.deepEqual(c.args, ['<<-EOT', '/etc/conf']);
  assert.equal(last.startLine, 13);
  assert.equal(only("FROM a\nRUN <<'X'\n$HOME\nX\n")[1].heredocs[0].expand, false);
  assert.equal(only('FROM a\nRUN ["echo", "<<EOF"]\n')[1].heredocs.length, 0, 'JSON form has no heredocs');
  assert.equal(only('FROM a\nRUN echo "<<EOF"\n')[1].heredocs.length, 0, 'quoted << is not a heredoc');
  throwsAt('FROM a\nRUN <<EOF\necho\n', 2, /unterminated heredoc/);
});

test('ENV and LABEL accept k v and k=v forms; ARG names and defaults', () => {
  const [, e1, e2, l, a] = only('FROM a\nENV A=1 B="x y" C=\nENV D e f\nLABEL "com.x"="y z" k=v\nARG X Y=2 Z="q r"\n');
  assert.deepEqual(e1.pairs, [{ key: 'A', value: '1' }, { key: 'B', value: '"x y"' }, { key: 'C', value: '' }]);
  assert.deepEqual(e2.pairs, [{ key: 'D', value: 'e f' }]);
  assert.deepEqual(l.pairs, [{ key: '"com.x"', value: '"y z"' }, { key: 'k', value: 'v' }]);
  assert.deepEqual(a.args, ['X', 'Y=2', 'Z="q r"']);
  throwsAt('FROM a\nENV A=1 B\n', 2, /can't find = in "B"/);
  throwsAt('FROM a\nENV A\n', 2, /ENV must have two arguments/);
  throwsAt('FROM a\nARG\n', 2, /ARG requires at least one argument/);
  throwsAt('FROM a\nARG X=1 =x\n', 2, /^Dockerfile:2: ARG names can not be blank$/);
  throwsAt('ARG =\nFROM a\n', 1, /ARG names can not be blank/);
});

test('every other instruction parses its arguments', () => {
  const ins = only('FROM a\nMAINTAINER Me <me@x>\nEXPOSE 80 443/tcp\nVOLUME ["/a", "/b"]\nVOLUME /c /d\nUSER app:app\nWORKDIR /w\nSTOPSIGNAL SIGKILL\nHEALTHCHECK NONE\nHEALTHCHECK CMD ["curl", "x"]\nSHELL ["/bin/bash", "-c"]\nONBUILD RUN make\nADD a b\n');
  assert.deepEqual(ins.map((i) => [i.keyword, i.args]), [
    ['FROM', ['a']], ['MAINTAINER', ['Me <me@x>']], ['EXPOSE', ['80', '443/tcp']], ['VOLUME', ['/a', '/b']], ['VOLUME', ['/c', '/d']],
    ['USER', ['app:app']], ['WORKDIR', ['/w']], ['STOPSIGNAL', ['SIGKILL']], ['HEALTHCHECK', ['NONE']], ['HEALTHCHECK', ['CMD', 'curl', 'x']],
    ['SHELL', ['/bin/bash', '-c']], ['ONBUILD', ['RUN make']], ['ADD', ['a', 'b']],
  ]);
  assert.equal(ins[11].trigger?.keyword, 'RUN');
  throwsAt('FROM a\nONBUILD ONBUILD RUN x\n', 2, /Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed/);
  throwsAt('FROM a\nONBUILD FROM x\n', 2, /isn't allowed as an ONBUILD trigger/);
  throwsAt('FROM a\nHEALTHCHECK PING x\n', 2, /Unknown type "PING" in HEALTHCHECK \(try CMD\)/);
  // parseHealthcheck leaves the flags of NONE unparsed: even unknown ones pass.
  assert.deepEqual(only('FROM a\nHEALTHCHECK --interval=5s --bogus NONE\n')[1].args, ['NONE']);
  throwsAt('FROM a\nHEALTHCHECK --bogus CMD true\n', 2, /unknown flag: --bogus/);
  throwsAt('FROM a\nCOPY onlyone\n', 2, /requires at least two arguments/);
});

test('stages: names, global ARGs, errors', () => {
  const r = parse('ARG V=1\nFROM a:$V AS Build\nRUN x\nFROM build\n');
  assert.equal(r.metaArgs.length, 1);
  assert.deepEqual(r.stages.map((s) => [s.index, s.name, s.instructions.length]), [[0, 'build', 1], [1, undefined, 0]]);
  throwsAt('RUN x\nFROM a\n', 1, /no build stage in current context/);
  throwsAt('ARG x\n', 0, /dockerfile contains no stages to build/);
  const dup = parse('FROM a AS b\nFROM c AS B\n');
  assert.match(dup.warnings.map((w) => w.message).join(), /Duplicate stage name "B", stage names should be unique/);
  assert.deepEqual(dup.stages.map((s) => s.name), [undefined, 'b'], 'the last stage of a name is the one found');
  throwsAt('FROM a AS 1x\n', 1, /invalid name for build stage/);
  throwsAt('FROM a b\n', 1, /one or three arguments/);
});
