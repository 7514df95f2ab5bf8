// Edge cases of everyday instructions: quoting, users and owners, WORKDIR under USER,
// variables in EXPOSE/VOLUME/USER, file names with spaces and pattern characters.
import type { Case } from '../lib/types.js';
import { argHistory, chain, chmodParents, copyFlagsHistory, HEALTH_CHANGE, healthHistory, historyAt } from './upstream.js';

const tree = { 'a b.txt': 'spaces\n', '[x].txt': 'brackets\n', 'star*.txt': 'star\n', 'q?.txt': 'question\n', 'sub/f': 'f\n' };

export const cases: Case[] = [
  // ENV and LABEL quoting
  { name: 'env-quotes-and-escapes', dockerfile: 'FROM {{BASE}}\nENV A="a b" B=c\\ d C=\'$A\' D="$A-\\$A" E=${A:+set}${Z:-unset}\nRUN echo "$A|$B|$C|$D|$E" > /env\n' },
  { name: 'env-legacy-form', dockerfile: 'FROM {{BASE}}\nENV GREETING hello   world  \nRUN echo "[$GREETING]" > /g\n' },
  { name: 'label-quotes', dockerfile: 'FROM {{BASE}}\nLABEL "com.x.quoted"="a b" plain=c\\ d multi="one \\\n two"\n' },
  { name: 'arg-default-from-arg', dockerfile: 'FROM {{BASE}}\nARG A=first\nARG B=${A}-second\nRUN echo "$B" > /b\n' },
  { name: 'arg-overrides-env-in-run', upstream: argHistory(historyAt(0, 'ARG V=from-arg')), args: { V: 'from-arg' }, dockerfile: 'FROM {{BASE}}\nARG V\nENV V=from-env\nRUN echo "$V" > /v\n' },
  // Variables in other instructions
  { name: 'expose-from-arg', upstream: { change: 'convert.go dispatchArg writes the value in force; convert_expose.go writes the parsed port list, fmt.Sprintf("EXPOSE %v", []string)', patch: chain(historyAt(0, 'ARG PORT=9000'), historyAt(1, 'EXPOSE [9000/tcp 9000/udp]')) }, args: { PORT: '9000' }, dockerfile: 'FROM {{BASE}}\nARG PORT=80\nEXPOSE $PORT ${PORT}/udp\n' },
  { name: 'volume-from-env', dockerfile: 'FROM {{BASE}}\nENV D=/data\nVOLUME $D ["/json/${D}"]\n' },
  { name: 'user-from-env', dockerfile: 'FROM {{BASE}}\nENV U=nobody\nUSER $U\n' },
  { name: 'workdir-from-env-relative', dockerfile: 'FROM {{BASE}}\nENV D=app\nWORKDIR /srv\nWORKDIR $D/sub\nRUN pwd > /tmp/pwd\n' },
  { name: 'stopsignal-from-arg', upstream: argHistory(historyAt(0, 'ARG SIG=SIGQUIT')), args: { SIG: 'SIGQUIT' }, dockerfile: 'FROM {{BASE}}\nARG SIG\nSTOPSIGNAL $SIG\n' },
  // Users and owners
  { name: 'workdir-under-user', dockerfile: 'FROM {{BASE}}\nUSER nobody\nWORKDIR /made/by/nobody\n' },
  { name: 'workdir-under-uid-gid', dockerfile: 'FROM {{BASE}}\nUSER 1234:5678\nWORKDIR /w\n' },
  { name: 'copy-chown-name-only', upstream: copyFlagsHistory('--chown=nobody'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=nobody sub /o/\n', files: tree },
  { name: 'copy-chown-numeric-user-name-group', upstream: copyFlagsHistory('--chown=1000:daemon'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=1000:daemon sub /o/\n', files: tree },
  { name: 'copy-chown-from-arg', upstream: { change: 'convert.go dispatchArg writes the value in force; convert_copy.go writes --chown= into the COPY history', patch: chain(historyAt(0, 'ARG OWN=7:8'), historyAt(1, 'COPY --chown=7:8 sub /o/ # buildkit')) }, args: { OWN: '7:8' }, dockerfile: 'FROM {{BASE}}\nARG OWN\nCOPY --chown=$OWN sub /o/\n', files: tree },
  { name: 'copy-chmod-dir-recursive', upstream: chmodParents('--chmod=700', { '/o': '700' }), dockerfile: 'FROM {{BASE}}\nCOPY --chmod=700 sub /o/\n', files: tree },
  { name: 'run-as-user-creates-file', dockerfile: 'FROM {{BASE}}\nUSER daemon\nRUN touch /tmp/owned && id > /tmp/id\n' },
  // File names
  { name: 'copy-name-with-space', dockerfile: 'FROM {{BASE}}\nCOPY ["a b.txt", "/o/"]\n', files: tree },
  { name: 'copy-name-brackets-literal', dockerfile: 'FROM {{BASE}}\nCOPY [[]x].txt /o/\n', files: tree },
  { name: 'copy-escaped-star', dockerfile: 'FROM {{BASE}}\nCOPY star\\*.txt /o/\n', files: tree },
  { name: 'copy-question-wildcard', dockerfile: 'FROM {{BASE}}\nCOPY q?.txt /o/\n', files: tree },
  { name: 'copy-dir-no-trailing-slash-new-dest', dockerfile: 'FROM {{BASE}}\nCOPY sub /newdir\n', files: tree },
  { name: 'copy-file-to-existing-dir-no-slash', dockerfile: 'FROM {{BASE}}\nCOPY sub/f /etc\n', files: tree },
  { name: 'copy-glob-no-match-with-match', dockerfile: 'FROM {{BASE}}\nCOPY sub/f nomatch* /o/\n', files: tree },
  { name: 'copy-dot-into-workdir', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nCOPY sub .\n', files: tree },
  // Shell and exec forms
  { name: 'cmd-shell-form-custom-shell', dockerfile: 'FROM {{BASE}}\nSHELL ["/bin/sh", "-ec"]\nCMD echo hi\nENTRYPOINT echo entry\n' },
  { name: 'run-exec-form-no-expansion', dockerfile: 'FROM {{BASE}}\nENV X=expanded\nRUN ["sh", "-c", "echo $X > /x; echo \'$X\' > /y"]\n' },
  { name: 'healthcheck-none', upstream: { change: HEALTH_CHANGE, patch: chain(historyAt(0, healthHistory(['CMD-SHELL', 'true'])), historyAt(1, healthHistory(['NONE']))) }, dockerfile: 'FROM {{BASE}}\nHEALTHCHECK CMD true\nHEALTHCHECK NONE\n' },
  { name: 'entrypoint-then-cmd-reset', dockerfile: 'FROM {{BASE}}\nCMD ["a"]\nENTRYPOINT ["/bin/echo"]\n' },
];
