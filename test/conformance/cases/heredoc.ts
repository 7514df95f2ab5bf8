// Heredocs (BuildKit's dockerfile_heredoc_test.go: testCopyHeredoc, testRunBasicHeredoc,
// testRunFakeHeredoc, testRunShebangHeredoc, testRunComplexHeredoc, testHeredocIndent,
// testHeredocVarSubstitution, testOnBuildHeredoc).
import type { Case } from '../lib/types.js';
import { allHistory, argHistory, chain, copyFlagsHistory, error, HEALTH_CHANGE, healthHistory, heredocMode, historyAt } from './upstream.js';

export const cases: Case[] = [
  { name: 'run-heredoc-basic', dockerfile: 'FROM {{BASE}}\nRUN <<EOF\necho one > /one\necho two > /two\nEOF\n' },
  { name: 'run-heredoc-shebang', dockerfile: 'FROM {{BASE}}\nRUN <<EOF\n#!/bin/sh\necho "$0" > /script-name\nEOF\n' },
  { name: 'run-heredoc-with-command', dockerfile: 'FROM {{BASE}}\nRUN cat <<EOF > /out\nline $HOME\nEOF\n' },
  { name: 'run-heredoc-quoted-delimiter', dockerfile: 'FROM {{BASE}}\nENV V=expanded\nRUN cat <<"EOF" > /out\n$V\nEOF\n' },
  { name: 'run-heredoc-two', dockerfile: 'FROM {{BASE}}\nRUN cat <<A > /a && cat <<B > /b\nfirst\nA\nsecond\nB\n' },
  { name: 'run-heredoc-dash-strips-tabs', dockerfile: 'FROM {{BASE}}\nRUN <<-EOF\n\techo tabbed > /t\n\tEOF\n' },
  { name: 'run-heredoc-fd', dockerfile: 'FROM {{BASE}}\nRUN cat 3<<EOF >/fd; true\nx\nEOF\n' },
  { name: 'copy-heredoc', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY <<EOF /h.txt\nhello\nEOF\n' },
  { name: 'copy-heredoc-expands', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nARG NAME=world\nCOPY <<EOF /h.txt\nhello $NAME "${NAME}"\nEOF\n' },
  { name: 'copy-heredoc-quoted-no-expand', upstream: heredocMode, dockerfile: "FROM {{BASE}}\nARG NAME=world\nCOPY <<'EOF' /h.txt\nhello $NAME\nEOF\n" },
  { name: 'copy-heredoc-two-files', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY <<one <<two /dir/\n1\none\n2\ntwo\n' },
  { name: 'copy-heredoc-chmod-chown', upstream: copyFlagsHistory('--chown=daemon --chmod=755'), dockerfile: 'FROM {{BASE}}\nCOPY --chmod=755 --chown=daemon <<EOF /bin/hello\n#!/bin/sh\necho hi\nEOF\n' },
  { name: 'copy-heredoc-dash', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY <<-EOF /t\n\tindented\n\t\ttwice\n\tEOF\n' },
  { name: 'copy-heredoc-mixed-with-file', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY a.txt <<EOF /mix/\nbody\nEOF\n', files: { 'a.txt': 'a\n' } },
  { name: 'add-heredoc', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nADD <<EOF /added\nadd body\nEOF\n' },
  { name: 'heredoc-unterminated', dockerfile: 'FROM {{BASE}}\nRUN <<EOF\necho never closed\n' },
];
