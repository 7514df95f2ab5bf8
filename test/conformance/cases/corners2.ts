// More corners (a second audit): stages the target does not need, targets and stage references
// in every spelling, config a child stage inherits and overrides, users and groups the image
// defines itself (RUN-added passwd entries, supplementary groups, scratch), COPY onto symlinks
// and across file/directory replacements, ADD of archives that are not named as archives, RUN
// mounts over existing paths, what a RUN's layer holds when it moves or recreates base
// directories, and parser directives and continuations in odd places.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Case } from '../lib/types.js';
import { argHistory, chmodParents, copyFlagsHistory, historyAt } from './upstream.js';

const files = { 'a.txt': 'a\n', 'b.txt': 'b\n', 'dir/x': 'x\n', 'dir/sub/y': 'y\n' };

/** A gzip-compressed tar of `t/` and `t/in.txt`, written by GNU tar and gzip -n with fixed metadata. */
function gzTar(): string {
  const work = mkdtempSync(join(tmpdir(), 'corners2-case-'));
  try {
    mkdirSync(join(work, 't'));
    writeFileSync(join(work, 't/in.txt'), 'inside\n');
    const tar = execFileSync('tar', ['--format=ustar', '--mtime=@1693526400', '--owner=0', '--group=0', '--numeric-owner', '--mode=go-w', '--no-recursion', '-cf', '-', '-C', work, 't', 't/in.txt']);
    return execFileSync('gzip', ['-n', '-c'], { input: tar }).toString('base64');
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
const tgz = gzTar();

export const cases: Case[] = [
  // Stages the target does not need, and targets
  { name: 'unused-stage-missing-image', dockerfile: 'FROM {{BASE}}-nosuchtag AS broken\nFROM {{BASE}}\nRUN touch /ok\n' },
  { name: 'unused-stage-copy-from-unknown', dockerfile: 'FROM {{BASE}} AS broken\nCOPY --from=nosuchstage /x /x\nFROM {{BASE}}\nRUN touch /ok\n' },
  { name: 'unused-stage-substitution-error', dockerfile: 'FROM {{BASE}} AS broken\nARG X\nENV Y="${X:?X is required}"\nFROM {{BASE}}\nRUN touch /ok\n' },
  { name: 'target-middle-stage-later-broken', target: 'mid', dockerfile: 'FROM {{BASE}} AS first\nRUN echo 1 > /1\nFROM first AS mid\nRUN echo 2 > /2\nFROM mid AS last\nRUN exit 7\n' },
  { name: 'target-uppercase-name', target: 'BUILD', dockerfile: 'FROM {{BASE}} AS build\nRUN touch /built\nFROM {{BASE}}\nRUN touch /final\n' },
  { name: 'mount-from-stage-uppercase', dockerfile: 'FROM {{BASE}} AS Src\nRUN echo s > /s\nFROM {{BASE}}\nRUN --mount=type=bind,from=SRC,source=/s,target=/m cat /m > /got\n' },
  { name: 'copy-from-stage-root', dockerfile: 'FROM scratch AS s\nCOPY a.txt dir /\nFROM {{BASE}}\nCOPY --from=s / /o/\n', files },
  { name: 'copy-from-stage-through-symlink-dir', dockerfile: 'FROM {{BASE}} AS s\nRUN mkdir /real && echo r > /real/f && ln -s /real /lnk\nFROM scratch\nCOPY --from=s /lnk/f /got\nCOPY --from=s /lnk /asdir/\n' },
  { name: 'copy-from-chmod', upstream: chmodParents('--chmod=640', { '/got': '640' }), dockerfile: 'FROM {{BASE}} AS s\nRUN mkdir /o && echo s > /o/f && chmod 700 /o/f\nFROM {{BASE}}\nCOPY --from=s --chmod=640 /o/f /got/\n' },
  { name: 'copy-from-chown-name-uses-dest-passwd', upstream: copyFlagsHistory('--chown=daemon'), dockerfile: 'FROM {{BASE}} AS s\nRUN sed -i "s/^daemon:x:1:1:/daemon:x:77:88:/" /etc/passwd && echo s > /s\nFROM {{BASE}}\nCOPY --from=s --chown=daemon /s /got\n' },
  // Config a child stage inherits and overrides
  { name: 'child-overrides-label-and-env', dockerfile: 'FROM {{BASE}} AS a\nLABEL x=1 y=2\nENV A=parent B=b\nFROM a\nLABEL x=3\nENV A=${A}-child\n' },
  { name: 'child-shell-form-cmd-uses-inherited-shell', dockerfile: 'FROM {{BASE}} AS a\nSHELL ["/bin/sh", "-xc"]\nFROM a\nCMD echo hi\nRUN echo "$-" > /flags\n' },
  { name: 'onbuild-trigger-uses-parent-shell', dockerfile: 'FROM {{BASE}} AS p\nSHELL ["/bin/sh", "-xc"]\nONBUILD RUN echo "$-" > /flags\nFROM p\n' },
  { name: 'child-entrypoint-after-own-cmd', dockerfile: 'FROM {{BASE}} AS a\nENTRYPOINT ["/a"]\nCMD ["from-a"]\nFROM a\nCMD ["mine"]\nENTRYPOINT ["/b"]\n' },
  { name: 'maintainer-inherited-by-child', dockerfile: 'FROM {{BASE}} AS a\nMAINTAINER parent <p@x>\nFROM a\nENV A=1\n' },
  { name: 'child-user-and-workdir-relative', dockerfile: 'FROM {{BASE}} AS a\nUSER daemon\nWORKDIR /wa\nFROM a\nWORKDIR sub\nRUN pwd > /tmp/pwd && id -u >> /tmp/pwd\n' },
  { name: 'volume-then-copy', dockerfile: 'FROM {{BASE}}\nVOLUME /v\nCOPY a.txt /v/\n', files },
  // ARG corners
  { name: 'from-arg-default-modifier', dockerfile: 'ARG IMG\nFROM ${IMG:-{{BASE}}}\nENV A=1\n' },
  { name: 'arg-names-case-sensitive', dockerfile: 'FROM {{BASE}}\nARG a=lower\nARG A=upper\nRUN echo "$a $A" > /v\n' },
  { name: 'arg-single-quoted-default', dockerfile: 'FROM {{BASE}}\nARG A=x\nARG B=\'$A\' C="$A"\nRUN echo "$B $C" > /v\n' },
  { name: 'arg-default-from-env', dockerfile: 'FROM {{BASE}}\nENV E=env\nARG A=$E-arg\nRUN echo "$A" > /v\n' },
  { name: 'arg-override-builtin-targetarch', upstream: argHistory(historyAt(0, 'ARG TARGETARCH=bogus')), args: { TARGETARCH: 'bogus' }, dockerfile: 'FROM {{BASE}}\nARG TARGETARCH\nRUN echo "$TARGETARCH" > /v\n' },
  // Users and groups the image defines
  { name: 'user-added-by-run', upstream: copyFlagsHistory('--chown=app:app'), dockerfile: 'FROM {{BASE}}\nRUN echo "app:x:1500:1600::/home/app:/bin/sh" >> /etc/passwd && echo "app:x:1600:" >> /etc/group\nCOPY --chown=app:app a.txt /o/\nUSER app\nRUN id > /tmp/id\n', files },
  { name: 'user-supplementary-groups', dockerfile: 'FROM {{BASE}}\nRUN echo "extra:x:2000:daemon" >> /etc/group\nUSER daemon\nRUN id -G > /tmp/g\n' },
  { name: 'root-supplementary-groups', dockerfile: 'FROM {{BASE}}\nRUN id -G > /g\n' },
  { name: 'user-uid-only-no-entry', dockerfile: 'FROM {{BASE}}\nUSER 4321\nRUN id -u > /tmp/u && id -g >> /tmp/u\n' },
  { name: 'scratch-user-ids-workdir', dockerfile: 'FROM scratch\nUSER 5:6\nWORKDIR /w\n' },
  // COPY onto symlinks and across file/directory replacements
  { name: 'copy-dir-entry-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN mkdir /o && echo t > /t && ln -s /t /o/x\nCOPY dir /o/\n', files },
  { name: 'copy-dir-onto-symlink-to-dir-no-slash', dockerfile: 'FROM {{BASE}}\nRUN mkdir /real && ln -s real /lnk\nCOPY dir /lnk\n', files },
  { name: 'copy-src-trailing-slash-dot', dockerfile: 'FROM {{BASE}}\nCOPY dir/. /o/\nCOPY ./dir/./sub/ /p\n', files },
  { name: 'copy-absolute-and-dotdot-source', dockerfile: 'FROM {{BASE}}\nCOPY /a.txt ../b.txt /o/\n', files },
  { name: 'copy-symlink-dir-trailing-slash-and-glob', dockerfile: 'FROM {{BASE}}\nCOPY ld/ /o/\nCOPY ld/* /p/\n', files: { 'real/f': 'f\n', 'real/g': 'g\n', ld: { symlink: 'real' } } },
  // ADD of archives by content, not name
  { name: 'add-gzip-tar-odd-name', dockerfile: 'FROM {{BASE}}\nADD blob.bin /x/\n', files: { 'blob.bin': { base64: tgz } } },
  { name: 'add-dir-holding-tar', dockerfile: 'FROM {{BASE}}\nADD d /x/\n', files: { 'd/t.tar.gz': { base64: tgz }, 'd/f': 'f\n' } },
  { name: 'add-wildcard-tars', dockerfile: 'FROM {{BASE}}\nADD *.tgz /x/\n', files: { 'one.tgz': { base64: tgz }, 'two.tgz': { base64: tgz } } },
  // RUN mounts over existing paths
  { name: 'mount-bind-over-existing-dir', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,source=dir,target=/etc ls /etc > /ls\n', files },
  { name: 'mount-bind-over-existing-file', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,source=a.txt,target=/etc/passwd cat /etc/passwd > /got\n', files },
  { name: 'mount-bind-source-dotdot', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,source=../..,target=/m ls /m > /ls\n', files },
  { name: 'run-network-default', dockerfile: 'FROM {{BASE}}\nRUN --network=default true\n' },
  // What a RUN's layer holds
  { name: 'run-base-dir-recreated', dockerfile: 'FROM {{BASE}}\nRUN rm -rf /home && mkdir /home && echo n > /home/new\n' },
  { name: 'run-move-base-dir', dockerfile: 'FROM {{BASE}}\nRUN mv /var /var2\n' },
  { name: 'run-removes-file-copied-earlier', dockerfile: 'FROM {{BASE}}\nCOPY dir /o/\nRUN rm /o/x && rm -r /o/sub && touch /o/new\n', files },
  { name: 'run-replace-file-same-content', dockerfile: 'FROM {{BASE}}\nRUN cp /etc/group /tmp/g && rm /etc/group && cp /tmp/g /etc/group && rm /tmp/g\n' },
  // Parser details
  { name: 'directive-check-ignored', dockerfile: '# check=skip=all\nFROM {{BASE}}\nENV A=1\n' },
  { name: 'directive-spaced-uppercase', dockerfile: '#   ESCAPE = `\nFROM {{BASE}}\nENV A=a `\n  B=b\n' },
  { name: 'directive-after-blank-line', dockerfile: '\n# escape=`\nFROM {{BASE}}\nENV A=a\\\\b\n' },
  { name: 'continuation-inside-json', dockerfile: 'FROM {{BASE}}\nCMD ["a", \\\n  "b"]\n' },
  { name: 'continuation-after-keyword', dockerfile: 'FROM {{BASE}}\nRUN \\\n  echo hi > /x\n' },
  { name: 'env-long-and-odd-values', dockerfile: `FROM {{BASE}}\nENV LONG=${'v'.repeat(5000)} EQ=b=c my.var-x=1 U=caf\u00e9\n` },
  // A relative secret target is the WORKDIR's (BuildKit's executor joins it with the cwd).
  { name: 'mount-secret-relative-target', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nRUN --mount=type=secret,id=s,target=rel/s cat /w/rel/s > /got\n', secrets: { s: 'relative' } },
  // A read-only cache mount cannot be written.
  { name: 'mount-cache-readonly-fails', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=cache,target=/c,ro touch /c/x\n' },
];
