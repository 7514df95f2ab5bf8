// Corners the other groups leave out: substitution operators in every instruction that expands
// words, built-in platform args outside RUN, ONBUILD triggers of each kind, odd exec-form JSON,
// USER/WORKDIR oddities, COPY of unusual context entries (a hard link, long and odd names,
// dangling and escaping symlinks, empty directories, special modes), COPY --link, .dockerignore
// corners, heredoc variants, what RUN mounts leave in a layer, odd values BuildKit accepts and
// the wording of more user mistakes.
import type { Case } from '../lib/types.js';
import { argHistory, copyFlagsHistory, error, FLAG_PREFIX_CHANGE, HEALTH_CHANGE, healthHistory, heredocMode, historyAt } from './upstream.js';

const files = { 'a.txt': 'a\n', 'b.txt': 'b\n', 'dir/x': 'x\n', 'dir/sub/y.log': 'y\n' };
const EXPOSE_CHANGE = 'convert_expose.go writes the parsed port list in order, fmt.Sprintf("EXPOSE %v", []string)';
const long = 'l'.repeat(120);
const longer = 'n'.repeat(255);
const META_ARG_CHANGE = 'convert.go buildMetaArgs sets only a global ARG that has a value: one without keeps the earlier or built-in value (moby/buildkit b9a4a6eed)';

export const cases: Case[] = [
  // Substitution operators outside ENV and RUN
  { name: 'env-nested-modifiers', dockerfile: 'FROM {{BASE}}\nARG V=v\nENV A=${U:-${V:-deep}} B=${V:+${W:-inner}} C=${U:+x}${V:+y} D="${U:-a b}"\n' },
  { name: 'copy-src-default', dockerfile: 'FROM {{BASE}}\nARG F\nCOPY ${F:-a.txt} ${D:-/o}/\n', files },
  { name: 'workdir-default', dockerfile: 'FROM {{BASE}}\nARG D\nWORKDIR ${D:-/fallback}/x\n' },
  { name: 'label-and-env-key-substitution', dockerfile: 'FROM {{BASE}}\nARG K=key\nLABEL $K=v "${K}2"=w\nENV ${K}_ENV=e\n' },
  { name: 'user-alternative', dockerfile: 'FROM {{BASE}}\nARG U=daemon\nUSER ${U:+1:2}\n' },
  { name: 'stopsignal-default', dockerfile: 'FROM {{BASE}}\nSTOPSIGNAL ${S:-SIGTERM}\n' },
  { name: 'volume-substitution-json', dockerfile: 'FROM {{BASE}}\nARG V=/vol\nVOLUME ["${V:-/x}/a", "$V"]\n' },
  { name: 'copy-escaped-dollar-name', dockerfile: 'FROM {{BASE}}\nARG x=a.txt\nCOPY \\$x /o/\n', files: { ...files, '$x': 'dollar\n' } },
  { name: 'env-escaped-dollar-and-braces', dockerfile: 'FROM {{BASE}}\nENV A=1\nENV B=\\${A} C="\\$A" D=\'${A}\' E=$$A\n' },
  { name: 'arg-global-redeclared-with-default', dockerfile: 'ARG V=global\nFROM {{BASE}}\nARG V=stage\nRUN echo "$V" > /v\n' },
  { name: 'from-arg-suffix', dockerfile: 'ARG SUFFIX\nFROM {{BASE}}${SUFFIX}\nENV A=1\n' },
  // Built-in platform args outside RUN
  { name: 'builtin-args-in-metadata', upstream: argHistory(historyAt(0, 'ARG TARGETOS=linux TARGETARCH=amd64 BUILDOS=linux')), dockerfile: 'FROM {{BASE}}\nARG TARGETOS TARGETARCH BUILDOS\nLABEL os=$TARGETOS arch=$TARGETARCH\nENV BUILD_OS=$BUILDOS\nWORKDIR /opt/$TARGETARCH\n' },
  { name: 'builtin-args-undeclared-empty', dockerfile: 'FROM {{BASE}}\nENV P="[$TARGETPLATFORM][$BUILDARCH]"\nLABEL p="[$TARGETARCH]"\n' },
  { name: 'builtin-args-copy-dest', upstream: argHistory(historyAt(0, 'ARG TARGETARCH=amd64')), dockerfile: 'FROM {{BASE}}\nARG TARGETARCH\nCOPY a.txt /opt/$TARGETARCH/\n', files },
  { name: 'arg-global-novalue-keeps-builtin', upstream: { change: META_ARG_CHANGE, equivalent: { dockerfile: 'FROM --platform=$BUILDPLATFORM {{BASE}}\nRUN uname -m > /m\n' } }, dockerfile: 'ARG BUILDPLATFORM\nFROM --platform=$BUILDPLATFORM {{BASE}}\nRUN uname -m > /m\n' },
  { name: 'arg-global-novalue-keeps-value', platform: 'linux/arm64', upstream: { change: META_ARG_CHANGE, equivalent: { dockerfile: 'ARG V=1\nFROM {{BASE}}\nARG V TARGETARCH\nRUN echo "$V $TARGETARCH" > /v\n' }, patch: historyAt(0, 'ARG V=1 TARGETARCH=arm64') }, dockerfile: 'ARG V=1\nARG V\nARG TARGETARCH\nFROM {{BASE}}\nARG V TARGETARCH\nRUN echo "$V $TARGETARCH" > /v\n' },
  { name: 'from-platform-targetplatform', dockerfile: 'FROM --platform=$TARGETPLATFORM {{BASE}}\nRUN uname -m > /m\n', platform: 'linux/arm64' },
  // ONBUILD triggers in the child
  { name: 'onbuild-copy-in-child', dockerfile: 'FROM {{BASE}} AS p\nONBUILD COPY a.txt /from-trigger\nFROM p\nRUN cat /from-trigger > /seen\n', files },
  { name: 'onbuild-arg-and-workdir', dockerfile: 'FROM {{BASE}} AS p\nONBUILD ARG X=1\nONBUILD WORKDIR /ob\nONBUILD RUN echo "$X" > x\nFROM p\n' },
  { name: 'onbuild-not-inherited-by-grandchild', dockerfile: 'FROM {{BASE}} AS p\nONBUILD RUN echo once >> /count\nFROM p AS c\nFROM c\nRUN cat /count > /seen\n' },
  { name: 'onbuild-user-then-run', dockerfile: 'FROM {{BASE}} AS p\nONBUILD USER daemon\nFROM p\nRUN id -u > /tmp/u\n' },
  { name: 'onbuild-heredoc-run-in-child', dockerfile: 'FROM {{BASE}} AS p\nONBUILD RUN <<EOF\necho hi > /h\nEOF\nFROM p\nRUN cat /h > /seen\n' },
  { name: 'onbuild-heredoc-config', dockerfile: 'FROM {{BASE}}\nONBUILD RUN <<-EOF\n\techo hi\n\tEOF\nONBUILD COPY <<A <<B /d/\na\nA\nb\nB\n' },
  { name: 'onbuild-maintainer-rejected', dockerfile: 'FROM {{BASE}}\nONBUILD MAINTAINER me\n' },
  // Exec form and JSON
  { name: 'cmd-single-quoted-not-json', dockerfile: "FROM {{BASE}}\nCMD ['a', 'b']\n" },
  { name: 'entrypoint-json-escapes', dockerfile: 'FROM {{BASE}}\nENTRYPOINT ["/bin/echo", "caf\\u00e9", "\\"q\\"", "back\\\\slash", "tab\\tx"]\n' },
  { name: 'cmd-json-spaced', dockerfile: 'FROM {{BASE}}\nCMD   [ "a" ,  "b" ]   \n' },
  { name: 'cmd-json-unterminated', dockerfile: 'FROM {{BASE}}\nCMD ["a", "b"\n' },
  { name: 'run-json-trailing-comma', dockerfile: 'FROM {{BASE}}\nRUN ["echo", "x",]\n' },
  { name: 'shell-then-heredoc-run', dockerfile: 'FROM {{BASE}}\nSHELL ["/bin/sh", "-ec"]\nRUN <<EOF\necho "$0" > /shell\nEOF\n' },
  { name: 'label-escaped-quotes', dockerfile: 'FROM {{BASE}}\nLABEL a="x \\"y\\" \\$z" b=\'c"d\' "k.\\"q\\""=v\n' },
  { name: 'label-quoted-key-with-equals', dockerfile: 'FROM {{BASE}}\nLABEL "k=eq"=v\n' },
  { name: 'expose-protocols', dockerfile: 'FROM {{BASE}}\nEXPOSE 5000-5001/udp 132/sctp\n', upstream: { change: EXPOSE_CHANGE, patch: historyAt(0, 'EXPOSE [5000/udp 5001/udp 132/sctp]') } },
  { name: 'volume-trailing-slash-and-duplicate', dockerfile: 'FROM {{BASE}}\nVOLUME ["/a", "/a"]\nVOLUME /b/\n' },
  { name: 'volume-then-run-writes', dockerfile: 'FROM {{BASE}}\nVOLUME /v\nRUN mkdir /v && echo kept > /v/f\n' },
  // USER and WORKDIR
  { name: 'user-unknown-then-workdir', dockerfile: 'FROM {{BASE}}\nUSER nosuch\nWORKDIR /w\n' },
  { name: 'user-unknown-then-copy', dockerfile: 'FROM {{BASE}}\nUSER nosuch\nCOPY a.txt /o/\n', files },
  { name: 'user-name-unknown-group', dockerfile: 'FROM {{BASE}}\nUSER daemon:nogroup\nRUN true\n' },
  { name: 'user-uid-group-name', dockerfile: 'FROM {{BASE}}\nUSER 1234:daemon\nRUN id > /tmp/id\n' },
  { name: 'workdir-through-symlink', dockerfile: 'FROM {{BASE}}\nRUN ln -s /tmp /lt\nWORKDIR /lt/sub\n' },
  { name: 'workdir-chain-env', dockerfile: 'FROM {{BASE}}\nENV A=a\nWORKDIR $A\nWORKDIR ${A}b\nWORKDIR ../$A/c\n' },
  { name: 'workdir-absolute-as-written', dockerfile: 'FROM {{BASE}}\nWORKDIR /app/\nRUN pwd > /pwd\nWORKDIR rel/\nRUN pwd >> /pwd\nWORKDIR /a//b/.\nWORKDIR //srv\nWORKDIR /../../x/./y/..\n' },
  { name: 'workdir-root-no-layer', dockerfile: 'FROM {{BASE}}\nWORKDIR /tmp\nWORKDIR /\nRUN pwd > /pwd\n' },
  // COPY corners
  { name: 'copy-from-empty-is-context', dockerfile: 'FROM {{BASE}}\nCOPY --from= a.txt /x\n', files },
  { name: 'copy-dangling-symlink-source', dockerfile: 'FROM {{BASE}}\nCOPY dangling /x\n', files: { dangling: { symlink: 'nowhere' } } },
  { name: 'copy-escaping-symlink-source', dockerfile: 'FROM {{BASE}}\nCOPY out /x\n', files: { out: { symlink: '../../../../etc/hostname' } } },
  { name: 'copy-missing-below-symlink', dockerfile: 'FROM {{BASE}}\nCOPY ld/missing /x\n', files: { 'real/f': 'f\n', ld: { symlink: 'real' } } },
  { name: 'copy-star-includes-dotfiles', dockerfile: 'FROM scratch\nCOPY * /o/\n', files: { '.hidden': 'h\n', visible: 'v\n', '.hd/f': 'f\n' } },
  { name: 'copy-link-chown', upstream: copyFlagsHistory('--chown=1:2'), dockerfile: 'FROM {{BASE}}\nCOPY --link --chown=1:2 a.txt dir /o/\n', files },
  { name: 'copy-link-over-file', dockerfile: 'FROM {{BASE}}\nCOPY --link a.txt /etc/passwd\n', files },
  { name: 'copy-relative-dest-no-workdir', dockerfile: 'FROM {{BASE}}\nCOPY a.txt rel/\nCOPY b.txt rel2\n', files },
  { name: 'copy-chown-unknown-group', upstream: copyFlagsHistory('--chown=1:nosuchgroup'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=1:nosuchgroup a.txt /o/\n', files },
  { name: 'copy-empty-dirs', dockerfile: 'FROM {{BASE}}\nCOPY e /e\nCOPY t /t/\n', files: { e: { dir: true }, 't/inner': { dir: true, mode: 0o700 } } },
  { name: 'copy-dangling-symlink-in-dir', dockerfile: 'FROM {{BASE}}\nCOPY d /o/\n', files: { 'd/dangling': { symlink: 'nowhere' }, 'd/out': { symlink: '../../../etc/shadow' } } },
  { name: 'copy-symlink-to-dir-source', dockerfile: 'FROM {{BASE}}\nCOPY ld /o/\n', files: { 'real/f': 'f\n', ld: { symlink: 'real' } } },
  { name: 'copy-context-hardlink-single', dockerfile: 'FROM {{BASE}}\nCOPY d/h /one\n', files: { 'd/f': 'f\n', 'd/h': { hardlink: 'd/f' } } },
  { name: 'copy-long-names', dockerfile: 'FROM {{BASE}}\nCOPY d /o/\n', files: { [`d/${long}/${long}/f`]: 'deep\n', [`d/${longer}`]: 'wide\n', [`d/s/${'x'.repeat(100)}`]: { symlink: `${long}/${long}/f` } } },
  { name: 'copy-odd-names', dockerfile: 'FROM {{BASE}}\nCOPY d /o/\n', files: { 'd/caf\u00e9 \u2603.txt': 'u\n', 'd/new\nline': 'n\n', 'd/tab\there': 't\n', 'd/back\\slash': 'b\n', 'd/-dash': 'd\n' } },
  { name: 'copy-identical-contents', dockerfile: 'FROM {{BASE}}\nCOPY d /o/\n', files: { 'd/a': 'same\n', 'd/b': 'same\n', 'd/c': 'same\n' } },
  { name: 'add-link-into-existing-dir', dockerfile: 'FROM {{BASE}}\nADD --link d /etc/\n', files: { 'd/x': 'x\n' } },
  { name: 'copy-special-modes', dockerfile: 'FROM {{BASE}}\nCOPY d /o/\n', files: { 'd/sgid': { content: 'g', mode: 0o2755 }, 'd/sticky': { dir: true, mode: 0o1755 }, 'd/none': { content: 'n', mode: 0o000 }, 'd/wx': { dir: true, mode: 0o333 } } },
  // .dockerignore
  { name: 'dockerignore-trailing-slash', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...files, '.dockerignore': 'dir/\nDockerfile\n.dockerignore\n' } },
  { name: 'dockerignore-negation-order', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...files, '.dockerignore': '!a.txt\n*.txt\ndir/*\n!dir/sub\nDockerfile\n.dockerignore\n' } },
  { name: 'dockerignore-all-but', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...files, '.dockerignore': '*\n!dir\n' } },
  { name: 'dockerignore-one-level-star', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...files, 'x.log': 'l\n', 'dir/z.log': 'z\n', '.dockerignore': '*/*.log\nDockerfile\n.dockerignore\n' } },
  { name: 'dockerignore-spaces-and-dotdot', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...files, '.dockerignore': '  a.txt  \n../b.txt\ndir/sub/../x\n\n#dir\nDockerfile\n.dockerignore\n' } },
  { name: 'dockerignore-doublestar-middle', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { 'dir/a/b/y.log': 'y', 'dir/y.log': 'z', 'y.log': 'w', 'dir/k': 'k', '.dockerignore': 'dir/**/y.log\n!/dir/a/b/y.log\nDockerfile\n.dockerignore\n' } },
  { name: 'dockerignore-dockerfile-specific', dockerfileName: 'app.Dockerfile', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...files, '.dockerignore': 'a.txt\n', 'app.Dockerfile.dockerignore': 'b.txt\napp.Dockerfile*\n' } },
  { name: 'dockerignore-bind-mount', dockerfile: 'FROM {{BASE}}\nRUN --mount=target=/ctx ls -a /ctx > /ls\n', files: { ...files, '.dockerignore': '*.txt\n' } },
  // Heredocs
  { name: 'run-heredoc-dash-quoted', dockerfile: 'FROM {{BASE}}\nENV V=v\nRUN <<-"EOF"\n\techo "$V" > /q\n\t\techo two >> /q\n\tEOF\n' },
  { name: 'run-heredoc-mixed-quotes-one-command', dockerfile: "FROM {{BASE}}\nENV V=v\nRUN cat <<A <<'B' > /o\n$V a\nA\n$V b\nB\n" },
  { name: 'run-heredoc-empty-body', dockerfile: 'FROM {{BASE}}\nRUN <<EOF\nEOF\n' },
  { name: 'copy-heredoc-relative-dest', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nCOPY <<EOF rel.txt\nbody\nEOF\n', upstream: heredocMode },
  { name: 'run-heredoc-shebang-args', dockerfile: 'FROM {{BASE}}\nRUN <<EOF\n#!/bin/sh -e\necho "$0 $-" > /sb\nEOF\n' },
  // What RUN mounts leave behind
  { name: 'mount-targets-new-paths', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,target=/var/cache/new --mount=type=tmpfs,target=/newtmp/deep --mount=type=bind,source=dir,target=/newbind/x touch /var/cache/new/f /newtmp/deep/f\n', files },
  { name: 'mount-secret-target-new-path', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=secret,id=s,target=/deep/secret/file cat /deep/secret/file > /dev/null\n', secrets: { s: 'x' } },
  { name: 'run-replaces-dir-with-symlink', dockerfile: 'FROM {{BASE}}\nRUN rm -rf /home && ln -s /tmp /home\n' },
  { name: 'run-removes-base-dir', dockerfile: 'FROM {{BASE}}\nRUN rm -rf /usr && rm /etc/group\n' },
  // Odd values BuildKit accepts, and errors
  { name: 'from-unknown-flag', upstream: { change: FLAG_PREFIX_CHANGE, expect: error('unknown flag: --foo') }, dockerfile: 'FROM --foo=x {{BASE}}\n' },
  { name: 'stopsignal-lowercase', dockerfile: 'FROM {{BASE}}\nSTOPSIGNAL sigkill\n' },
  { name: 'expose-port-zero', upstream: { change: EXPOSE_CHANGE, patch: historyAt(0, 'EXPOSE [0/tcp]') }, dockerfile: 'FROM {{BASE}}\nEXPOSE 0\n' },
  { name: 'arg-blank-name', dockerfile: 'FROM {{BASE}}\nARG =x\n' },
  { name: 'healthcheck-none-ignores-flags', upstream: { change: HEALTH_CHANGE, patch: historyAt(0, healthHistory(['NONE'])) }, dockerfile: 'FROM {{BASE}}\nHEALTHCHECK --interval=5s --bogus=1 NONE\n' },
  { name: 'run-json-empty', dockerfile: 'FROM {{BASE}}\nRUN []\n' },
  { name: 'run-json-empty-then-unset-var', dockerfile: 'FROM {{BASE}}\nRUN []\nCOPY ${X:?need_X} /x\n', files: { a: 'a' } },
  { name: 'escape-directive-twice', dockerfile: '# escape=`\n# escape=\\\nFROM {{BASE}}\nENV A=a`\n  b\n' },
];
