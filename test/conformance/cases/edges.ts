// Edge cases of everyday instructions: quoting, users and owners, WORKDIR under USER,
// variables in EXPOSE/VOLUME/USER, file names with spaces and pattern characters.
import type { CraftedEntry } from '@buildyard/testkit';
import type { Case } from '../lib/types.js';
import { argHistory, chain, chmodParents, copyFlagsHistory, HEALTH_CHANGE, healthHistory, historyAt } from './upstream.js';

// VFS_CAP_REVISION_2 with the effective flag, cap_net_bind_service permitted: all bytes below 0x80.
const capability = '\u0001\u0000\u0000\u0002\u0000\u0004' + '\u0000'.repeat(14);
const xattrImage: CraftedEntry[] = [
  { name: 'app', data: 'binary\n', mode: 0o755, xattrs: { 'security.capability': capability, 'user.origin': 'crafted' } },
  { name: 'note', data: 'text\n', xattrs: { 'user.note': 'kept in the snapshot' } },
  { name: 'd/', type: 'directory', xattrs: { 'user.dir': 'd' } },
  { name: 'd/f', data: 'f\n', mode: 0o755, xattrs: { 'security.capability': capability } },
];

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
  // Stages and ARGs across them
  { name: 'global-arg-needs-redeclare', upstream: argHistory(historyAt(1, 'ARG G=global')), dockerfile: 'ARG G=global\nFROM {{BASE}}\nRUN echo "[$G]" > /before\nARG G\nRUN echo "[$G]" > /after\n' },
  { name: 'stage-name-case-insensitive', dockerfile: 'FROM {{BASE}} AS Build\nRUN echo b > /b\nFROM build\nRUN cat /b > /c\n' },
  { name: 'copy-from-stage-index', dockerfile: 'FROM {{BASE}}\nRUN echo zero > /z\nFROM scratch\nCOPY --from=0 /z /z\n' },
  { name: 'from-arg-stage-name', args: { S: 'one' }, dockerfile: 'ARG S=two\nFROM {{BASE}} AS one\nRUN echo one > /n\nFROM {{BASE}} AS two\nRUN echo two > /n\nFROM ${S}\n' },
  { name: 'mount-cache-shared-across-runs', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,target=/c,id=edges-shared echo v > /c/f\nRUN --mount=type=cache,target=/c,id=edges-shared cat /c/f > /seen\n' },
  { name: 'mount-bind-from-image', dockerfile: 'FROM scratch AS empty\nFROM {{BASE}}\nRUN --mount=type=bind,from={{BASE}},target=/img cat /img/etc/passwd | head -1 > /first\n' },
  // Parsing
  { name: 'crlf-line-endings', dockerfile: 'FROM {{BASE}}\r\nENV A=1\r\nRUN echo "$A" > /a\r\n' },
  { name: 'continuation-with-comment-and-blank', dockerfile: 'FROM {{BASE}}\nRUN echo one \\\n# a comment inside\n\n  two > /c\n' },
  { name: 'lowercase-instructions', dockerfile: 'from {{BASE}}\nenv A=1\nrun echo "$A" > /a\nworkdir /w\n' },
  { name: 'env-self-reference', dockerfile: 'FROM {{BASE}}\nENV PATH=/opt/bin:$PATH\nRUN echo "$PATH" > /p\n' },
  { name: 'workdir-trailing-slash-relative', dockerfile: 'FROM {{BASE}}\nWORKDIR rel/\nRUN pwd > /p\n' },
  { name: 'onbuild-recorded', dockerfile: 'FROM {{BASE}}\nONBUILD RUN echo later\nONBUILD COPY . /app\n' },
  // Context
  { name: 'dockerignore-reinclude', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { 'keep/a': 'a\n', 'keep/b': 'b\n', 'drop/x': 'x\n', 'drop/y': 'y\n', 'top.md': 't\n', '.dockerignore': '# comment\n/drop\n!drop/y\nkeep/*\n!keep/b\n*.md\nDockerfile\n.dockerignore\n' } },
  { name: 'copy-hardlinks-kept', dockerfile: 'FROM {{BASE}} AS s\nRUN mkdir /o && echo x > /o/f && ln /o/f /o/h\nFROM scratch\nCOPY --from=s /o /o\n' },
  { name: 'add-dir-and-files', dockerfile: 'FROM {{BASE}}\nADD ["sub", "a b.txt", "/o/"]\n', files: tree },
  // Failures
  { name: 'run-exit-code-error', dockerfile: 'FROM {{BASE}}\nRUN exit 3\n' },
  { name: 'copy-missing-source-error', dockerfile: 'FROM {{BASE}}\nCOPY missing.txt /x\n', files: tree },
  { name: 'copy-from-missing-path-error', divergence: 'BuildKit v0.11.6 leaks its temporary mount path (lstat /tmp/buildkit-mount…/nope) for a stage that is only its image; Buildyard says what it says for any stage (failed to calculate checksum of ref …: "/nope": not found)', dockerfile: 'FROM {{BASE}} AS s\nFROM {{BASE}}\nCOPY --from=s /nope /x\n' },
  { name: 'copy-from-run-stage-missing-path-error', dockerfile: 'FROM {{BASE}} AS s\nRUN echo > /made\nFROM {{BASE}}\nCOPY --from=s /nope /x\n' },
  { name: 'copy-from-missing-wildcard-error', dockerfile: 'FROM {{BASE}} AS s\nRUN echo > /made\nFROM {{BASE}}\nCOPY --from=s /nope* /x/\n' },
  // What a RUN's layer holds
  { name: 'run-touch-base-file', dockerfile: 'FROM {{BASE}}\nRUN touch /etc/passwd\n' },
  { name: 'run-chmod-base-file', dockerfile: 'FROM {{BASE}}\nRUN chmod 600 /etc/group\n' },
  { name: 'run-chown-base-dir', dockerfile: 'FROM {{BASE}}\nRUN chown 5:6 /home\n' },
  { name: 'run-create-then-delete', dockerfile: 'FROM {{BASE}}\nRUN touch /tmp/gone && rm /tmp/gone && echo kept > /kept\n' },
  { name: 'run-dir-becomes-file', dockerfile: 'FROM {{BASE}}\nRUN mkdir -p /d/e && touch /d/e/f\nRUN rm -rf /d && echo file > /d\n' },
  { name: 'run-file-becomes-dir', dockerfile: 'FROM {{BASE}}\nRUN echo f > /f\nRUN rm /f && mkdir -p /f/g && touch /f/g/h\n' },
  { name: 'run-symlink-becomes-dir', dockerfile: 'FROM {{BASE}}\nRUN ln -s /tmp /l\nRUN rm /l && mkdir /l && touch /l/in\n' },
  { name: 'run-hardlink-to-base-file', dockerfile: 'FROM {{BASE}}\nRUN ln /etc/passwd /passwd-link\n' },
  { name: 'run-delete-then-recreate-same', dockerfile: 'FROM {{BASE}}\nRUN echo a > /same\nRUN rm /same && echo a > /same\n' },
  { name: 'run-empty-dir-and-special-modes', dockerfile: 'FROM {{BASE}}\nRUN mkdir -m 1777 /sticky && mkdir -m 2750 /setgid && mkdir /empty\n' },
  // Platforms
  { name: 'buildplatform-stage-for-arm64', platform: 'linux/arm64', dockerfile: 'FROM --platform=$BUILDPLATFORM {{BASE}} AS tools\nARG TARGETARCH BUILDARCH\nRUN echo "$BUILDARCH->$TARGETARCH" > /cross && uname -m >> /cross\nFROM {{BASE}}\nCOPY --from=tools /cross /cross\n' },
  // A stage as the base of another: its whole config carries over
  { name: 'stage-base-inherits-config', upstream: { change: 'convert_expose.go writes the parsed port list; convert.go dispatchHealthcheck writes HealthcheckConfig with %+v', patch: chain(historyAt(4, 'EXPOSE [81/tcp]'), historyAt(8, healthHistory(['CMD-SHELL', 'true'], { interval: '9s' }))) }, dockerfile: 'FROM {{BASE}} AS a\nENV A=1 PATH=/a:$PATH\nWORKDIR /wa\nUSER daemon\nLABEL la=1\nEXPOSE 81\nVOLUME /va\nSTOPSIGNAL SIGINT\nSHELL ["/bin/sh", "-xc"]\nHEALTHCHECK --interval=9s CMD true\nENTRYPOINT ["/bin/echo"]\nCMD ["a"]\nFROM a\nENV B=2\nLABEL lb=2\nRUN pwd > /tmp/pwd-b; id -u >> /tmp/pwd-b\n' },
  { name: 'stage-base-onbuild-fires', dockerfile: 'FROM {{BASE}} AS a\nONBUILD RUN echo fired > /onbuild\nONBUILD ENV FIRED=yes\nFROM a\nRUN cat /onbuild > /seen && echo "$FIRED" >> /seen\n' },
  { name: 'arg-value-inherited-by-child-stage', upstream: { change: 'convert.go dispatchState.init: a stage based on another starts with its build args (c7c2f0e9, dockerfile 1.10), so RUN history lists them; v0.11.6 started them empty', patch: historyAt(3, 'RUN |1 foo=bar /bin/sh -c echo "[$foo]" > /run-saw # buildkit') }, files: { 'bar.txt': 'bar\n' }, dockerfile: 'FROM {{BASE}} AS base\nARG foo=bar\nFROM base\nCOPY $foo.txt /copied\nENV seen="[$foo]"\nRUN echo "[$foo]" > /run-saw\n' },
  { name: 'cmd-inherited-then-entrypoint-in-child', dockerfile: 'FROM {{BASE}} AS a\nCMD ["inherited"]\nFROM a\nENTRYPOINT ["/bin/echo"]\n' },
  // A final stage pinned to another platform
  { name: 'final-stage-other-platform', upstream: argHistory(historyAt(1, 'ARG TARGETARCH=amd64')), dockerfile: 'FROM --platform=linux/arm64 {{BASE}}\nARG TARGETARCH\nRUN echo "$TARGETARCH $(uname -m)" > /arch\n' },
  { name: 'copy-from-other-platform-stage', dockerfile: 'FROM --platform=linux/arm64 {{BASE}} AS arm\nRUN uname -m > /m\nFROM {{BASE}}\nCOPY --from=arm /m /m\n' },
  // Empty and repeated values
  { name: 'env-and-label-empty-values', dockerfile: 'FROM {{BASE}}\nENV A= B=""\nLABEL empty="" other=x\n' },
  { name: 'expose-duplicates', upstream: { change: 'convert_expose.go writes the parsed port list in order, duplicates kept, fmt.Sprintf("EXPOSE %v", []string)', patch: chain(historyAt(0, 'EXPOSE [80/tcp 80/tcp 443/tcp]'), historyAt(1, 'EXPOSE [443/tcp]')) }, dockerfile: 'FROM {{BASE}}\nEXPOSE 80/tcp 80 443\nEXPOSE 443/tcp\n' },
  { name: 'entrypoint-and-cmd-empty-json', dockerfile: 'FROM {{BASE}}\nENTRYPOINT ["/bin/echo"]\nCMD ["x"]\nENTRYPOINT []\nCMD []\n' },
  { name: 'cmd-last-wins', dockerfile: 'FROM {{BASE}}\nCMD ["first"]\nCMD second thing\n' },
  { name: 'user-does-not-own-copy', dockerfile: 'FROM {{BASE}}\nUSER nobody\nWORKDIR /w\nCOPY sub/f rel/\n', files: tree },
  { name: 'add-local-chown-name', dockerfile: 'FROM {{BASE}}\nADD --chown=daemon sub/f /o/\n', files: tree, upstream: copyFlagsHistory('--chown=daemon') },
  { name: 'arg-without-default-in-run', dockerfile: 'FROM {{BASE}}\nARG NOVAL\nRUN echo "[${NOVAL}]" > /v\n' },
  // RUN --mount details
  { name: 'mount-bind-single-file', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,source=sub/f,target=/in cat /in > /out\n', files: tree },
  { name: 'mount-bind-target-relative-to-workdir', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nRUN --mount=type=bind,source=sub,target=rel ls rel > /ls\n', files: tree },
  { name: 'mount-cache-from-stage-source', dockerfile: 'FROM {{BASE}} AS seed\nRUN mkdir -p /seed/sub && echo seeded > /seed/sub/s\nFROM {{BASE}}\nRUN --mount=type=cache,id=edges-seeded,target=/c,from=seed,source=/seed cat /c/sub/s > /got\n' },
  { name: 'mount-cache-private-sharing', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,id=edges-private,target=/c,sharing=private touch /c/x && ls /c > /ls\n' },
  { name: 'mount-tmpfs-size', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=tmpfs,target=/t,size=1m df -k /t | tail -1 | awk \'{print $2}\' > /size\n' },
  { name: 'mount-secret-env-and-file', secrets: { tok: 'sekrit' }, dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=tok,env=TOK --mount=type=secret,id=tok,target=/s [ "$TOK" = "$(cat /s)" ] && echo same > /r\n', upstream: { change: 'RUN --mount=type=secret,env= (Dockerfile 1.10)', equivalent: { dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=tok,target=/s [ "sekrit" = "$(cat /s)" ] && echo same > /r\n' }, patch: historyAt(0, 'RUN /bin/sh -c [ "$TOK" = "$(cat /s)" ] && echo same > /r # buildkit') } },
  // Parser details
  { name: 'hash-not-at-line-start', dockerfile: 'FROM {{BASE}}\nRUN echo a # not a comment > /x; echo b > /y\n' },
  { name: 'continuation-trailing-whitespace', dockerfile: 'FROM {{BASE}}\nRUN echo one \\  \n  two > /c\n' },
  { name: 'continuation-at-eof', dockerfile: 'FROM {{BASE}}\nENV A=1 \\\n' },
  { name: 'indented-instructions-and-comments', dockerfile: '  FROM {{BASE}}\n    # indented comment\n\tENV A=1\n  RUN echo "$A" > /a\n' },
  { name: 'json-form-with-escapes', dockerfile: 'FROM {{BASE}}\nRUN ["sh", "-c", "printf \'%s\\\\n\' \\"q\\" > /q"]\nCMD ["a\\tb", "\\u00e9"]\n' },
  { name: 'heredoc-with-leading-space-and-vars', dockerfile: 'FROM {{BASE}}\nENV N=name\nRUN <<EOT\n  echo "  $N" > /h\n  echo done >> /h\nEOT\n' },
  // What a RUN's process sees
  { name: 'run-home-and-user-env', dockerfile: 'FROM {{BASE}}\nUSER nobody\nRUN echo "home=[$HOME] user=[$USER] path=[$PATH]" > /tmp/env\n' },
  { name: 'run-path-default-without-env', dockerfile: 'FROM {{BASE}} AS b\nFROM scratch\nCOPY --from=b /bin /bin\nRUN echo "[$PATH]" > /p\n' },
  { name: 'run-cwd-default', dockerfile: 'FROM {{BASE}}\nRUN pwd > /cwd\n' },
  // Extended attributes: COPY carries a file's own (fsutil's copy, after the chown that would
  // clear a capability); a step's layer keeps only security.capability (containerd's change
  // writer), whatever else the snapshot holds; a chown in a RUN clears the capability.
  { name: 'xattrs-copy-from-stage', upstream: { change: copyFlagsHistory('--chown=7:8').change, patch: historyAt(1, 'COPY --chown=7:8 /app /owned # buildkit') }, dockerfile: 'FROM {{CRAFTED}} AS src\nFROM {{BASE}}\nCOPY --from=src /app /note /x/\nCOPY --chown=7:8 --from=src /app /owned\nCOPY --from=src /d /d\n', crafted: xattrImage },
  // A context's files carry their own xattrs (fsutil's Stat.Xattrs), but BuildKit's receiver chowns
  // each file after setting them, which clears security.capability: no layer has one. user.* stay
  // in the snapshot, never in a layer.
  { name: 'xattrs-context-copy', dockerfile: 'FROM {{BASE}}\nCOPY src /ctx/\nCOPY src/app src/d/f /again/\nRUN chmod 700 /ctx/note\n', files: {
    'src/app': { content: 'binary\n', mode: 0o755, xattrs: { 'security.capability': capability, 'user.origin': 'context' } },
    'src/note': { content: 'text\n', xattrs: { 'user.note': 'only in the snapshot' } },
    'src/d': { dir: true, xattrs: { 'user.dir': 'd' } },
    'src/d/f': { content: 'f\n', mode: 0o755, xattrs: { 'security.capability': capability } },
  } },
  { name: 'xattrs-run-copy-up', dockerfile: 'FROM {{BASE}}\nCOPY --from={{CRAFTED}} / /x/\nRUN chmod 700 /x/app /x/note /x/d && chown 1 /x/d/f\n', crafted: xattrImage },
];
