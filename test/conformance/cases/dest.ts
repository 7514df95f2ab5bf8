// Where a COPY/ADD/heredoc writes when its destination is a symlink (fsutil's Copy resolves the
// whole destination inside the root, fs.RootPath: a final link is written through, a dangling
// one's target is made; entries inside a copied directory still replace links), and --chown / a
// USER's WORKDIR by name on an untouched FROM scratch (file.go: the lookup input is index -1).
import type { Case } from '../lib/types.js';
import { copyFlagsHistory, heredocMode } from './upstream.js';

/** copyFlagsHistory for the COPY at history entry `i` only (the stage's other COPYs have no flags). */
function flagsAt(i: number, flags: string): NonNullable<Case['upstream']> {
  const { change } = copyFlagsHistory(flags);
  return { change, patch: (r) => { const h = r.history![i]; h.created_by = h.created_by.replace(/^(COPY|ADD) /, `$1 ${flags} `); return r; } };
}

const files = { 'a.txt': 'a\n', 'b.txt': 'b\n', 'dir/x': 'x\n' };
const BODY = 'served content\n';
const passwd = 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:7:8:daemon:/:/bin/false\n';
const group = 'root:x:0:\ndaemon:x:8:\nstaff:x:50:\n';

export const cases: Case[] = [
  // A file copied onto a symlink: written through it, the link stays
  { name: 'copy-file-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nCOPY a.txt /lnk\n', files },
  { name: 'copy-file-onto-relative-symlink', dockerfile: 'FROM {{BASE}}\nRUN mkdir /d && echo orig > /d/t && ln -s t /d/lnk\nCOPY a.txt /d/lnk\n', files },
  { name: 'copy-file-onto-symlink-chain', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /l2 && ln -s l2 /l1\nCOPY a.txt /l1\n', files },
  { name: 'copy-file-onto-dangling-symlink', dockerfile: 'FROM {{BASE}}\nRUN ln -s /nowhere/x /lnk\nCOPY a.txt /lnk\n', files },
  { name: 'copy-file-onto-dangling-symlink-chown', upstream: copyFlagsHistory('--chown=3:4'), dockerfile: 'FROM {{BASE}}\nRUN ln -s /new/deep/x /lnk\nCOPY --chown=3:4 a.txt /lnk\n', files },
  { name: 'copy-file-onto-symlink-dotdot', dockerfile: 'FROM {{BASE}}\nRUN ln -s /../../../tmp/esc /lnk && ln -s ../../../../tmp/rel /tmp/lnk2\nCOPY a.txt /lnk\nCOPY b.txt /tmp/lnk2\n', files },
  { name: 'copy-file-onto-symlink-proc-self-root', dockerfile: 'FROM {{BASE}}\nRUN ln -s /proc/self/root/tmp/p /lnk\nCOPY a.txt /lnk\n', files },
  { name: 'copy-file-onto-symlink-to-dir-no-slash', dockerfile: 'FROM {{BASE}}\nRUN mkdir /somedir && ln -s /somedir /lnkdir\nCOPY a.txt /lnkdir\n', files },
  { name: 'copy-file-into-dir-onto-entry-symlink', dockerfile: 'FROM {{BASE}}\nRUN mkdir /d && echo t > /t && ln -s /t /d/a.txt\nCOPY a.txt /d\n', files },
  { name: 'copy-file-trailing-slash-entry-symlink', dockerfile: 'FROM {{BASE}}\nRUN mkdir /d && echo t > /t && ln -s /t /d/a.txt\nCOPY a.txt /d/\n', files },
  { name: 'copy-two-files-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nCOPY a.txt b.txt /lnk\n', files },
  { name: 'copy-wildcard-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nCOPY a.* /lnk\n', files },
  { name: 'copy-dir-onto-dangling-symlink', dockerfile: 'FROM {{BASE}}\nRUN ln -s /made/here /lnk\nCOPY dir /lnk\n', files },
  { name: 'copy-from-stage-onto-symlink', dockerfile: 'FROM {{BASE}} AS s\nRUN echo s > /s\nFROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nCOPY --from=s /s /lnk\n' },
  { name: 'copy-link-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nCOPY --link a.txt /lnk\n', files },
  { name: 'copy-workdir-relative-onto-symlink', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nRUN echo orig > /target && ln -s ../target /w/lnk\nCOPY a.txt lnk\n', files },
  { name: 'add-local-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nADD a.txt /lnk\n', files },
  // The heredoc form (a copy of a file BuildKit makes on scratch)
  { name: 'heredoc-onto-symlink', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nCOPY <<EOF /lnk\nhello\nEOF\n' },
  { name: 'heredoc-onto-dangling-symlink', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nRUN ln -s /nowhere/x /lnk\nCOPY <<EOF /lnk\nhello\nEOF\n' },
  { name: 'heredoc-onto-symlink-to-dir-no-slash', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nRUN mkdir /somedir && ln -s /somedir /lnkdir\nCOPY <<EOF /lnkdir\nhello\nEOF\n' },
  { name: 'heredoc-onto-existing-dir-no-slash', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY <<EOF /etc\nhello\nEOF\n' },
  { name: 'heredoc-into-dir-onto-entry-symlink', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nRUN mkdir /d && echo t > /t && ln -s /t /d/EOF\nCOPY <<EOF /d/\nhello\nEOF\n' },
  // ADD <url>
  { name: 'add-url-onto-symlink', dockerfile: 'FROM {{BASE}}\nRUN echo orig > /target && ln -s /target /lnk\nADD {{URL}}/files/data.txt /lnk\n', served: { body: BODY } },
  { name: 'add-url-onto-dangling-symlink', dockerfile: 'FROM {{BASE}}\nRUN ln -s /nowhere/x /lnk\nADD {{URL}}/files/data.txt /lnk\n', served: { body: BODY } },
  { name: 'add-url-onto-symlink-to-dir-no-slash', dockerfile: 'FROM {{BASE}}\nRUN mkdir /somedir && ln -s /somedir /lnkdir\nADD {{URL}}/files/data.txt /lnkdir\n', served: { body: BODY } },
  // A user name on an untouched FROM scratch: nothing to look it up in
  { name: 'scratch-chown-name', dockerfile: 'FROM scratch\nCOPY --chown=daemon a.txt /\n', files },
  { name: 'scratch-chown-group-name', dockerfile: 'FROM scratch\nCOPY --chown=1:daemon a.txt /\n', files },
  { name: 'scratch-chown-numeric', upstream: copyFlagsHistory('--chown=5:6'), dockerfile: 'FROM scratch\nCOPY --chown=5:6 a.txt /\n', files },
  { name: 'scratch-chown-root', upstream: copyFlagsHistory('--chown=root:root'), dockerfile: 'FROM scratch\nCOPY --chown=root:root a.txt /\n', files },
  { name: 'scratch-user-workdir', dockerfile: 'FROM scratch\nUSER daemon\nWORKDIR /w\n' },
  { name: 'scratch-user-copy-no-chown', dockerfile: 'FROM scratch\nUSER daemon\nCOPY a.txt /\n', files },
  { name: 'scratch-chown-heredoc', dockerfile: 'FROM scratch\nCOPY --chown=daemon <<EOF /f\nhello\nEOF\n' },
  { name: 'scratch-chown-add-url', dockerfile: 'FROM scratch\nADD --chown=daemon {{URL}}/files/data.txt /\n', served: { body: BODY } },
  { name: 'scratch-stage-base-chown-name', dockerfile: 'FROM scratch AS s\nFROM s\nCOPY --chown=daemon a.txt /\n', files },
  // Once the stage has a layer the name is looked up in its /etc/passwd
  { name: 'scratch-layer-chown-no-passwd', upstream: flagsAt(1, '--chown=daemon'), dockerfile: 'FROM scratch\nCOPY b.txt /\nCOPY --chown=daemon a.txt /\n', files },
  { name: 'scratch-layer-chown-name-missing', upstream: flagsAt(1, '--chown=nosuch'), dockerfile: 'FROM scratch\nCOPY passwd /etc/passwd\nCOPY --chown=nosuch a.txt /\n', files: { ...files, passwd } },
  { name: 'scratch-layer-chown-name-found', upstream: flagsAt(2, '--chown=daemon:staff'), dockerfile: 'FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\nCOPY --chown=daemon:staff a.txt /\n', files: { ...files, passwd, group } },
  { name: 'scratch-layer-user-workdir', dockerfile: 'FROM scratch\nCOPY passwd /etc/passwd\nUSER daemon\nWORKDIR /w\n', files: { passwd } },
];
