// COPY and ADD from the context and from stages (BuildKit's dockerfile_test.go copy tests:
// testCopyWildcards, testCopyChownCreateDest, testCopyChmod, testCopySymlinks, testCopyRelative,
// testCopyOverrideFiles, testCopyVarSubstitution, testAddURLChmod, testCopyFollowAllSymlinks,
// testCopyWildcardCache, testCopyFromStage*, testExcludes, testCopyParents).
import type { Case } from '../lib/types.js';
import { allHistory, argHistory, chain, chmodParents, copyFlagsHistory, error, FLAG_PREFIX_CHANGE, HEALTH_CHANGE, healthHistory, heredocMode, historyAt } from './upstream.js';

const tree = {
  'a.txt': 'a\n',
  'b.txt': 'b\n',
  'c.md': 'c\n',
  'dir/x': 'x\n',
  'dir/sub/y': 'y\n',
  'dir/sub/z.txt': 'z\n',
  'exec.sh': { content: '#!/bin/sh\n', mode: 0o755 },
};

export const cases: Case[] = [
  { name: 'copy-file-to-dir', dockerfile: 'FROM {{BASE}}\nCOPY a.txt /dst/\n', files: tree },
  { name: 'copy-file-rename', dockerfile: 'FROM {{BASE}}\nCOPY a.txt /dst/renamed\n', files: tree },
  { name: 'copy-file-onto-existing-dir', dockerfile: 'FROM {{BASE}}\nCOPY a.txt /etc\n', files: tree },
  { name: 'copy-dir-contents', dockerfile: 'FROM {{BASE}}\nCOPY dir /dst\n', files: tree },
  { name: 'copy-dot', dockerfile: 'FROM scratch\nCOPY . /\n', files: tree },
  { name: 'copy-multiple-mixed', dockerfile: 'FROM {{BASE}}\nCOPY a.txt dir *.md /dst/\n', files: tree },
  { name: 'copy-multiple-needs-slash', dockerfile: 'FROM {{BASE}}\nCOPY a.txt b.txt /dst\n', files: tree },
  { name: 'copy-wildcard-to-dir', dockerfile: 'FROM {{BASE}}\nCOPY *.txt /dst/\n', files: tree },
  { name: 'copy-wildcard-single-match-no-slash', dockerfile: 'FROM {{BASE}}\nCOPY *.md /dst\n', files: tree },
  { name: 'copy-wildcard-nested', dockerfile: 'FROM {{BASE}}\nCOPY dir/*/z* /dst/\n', files: tree },
  { name: 'copy-wildcard-class', dockerfile: 'FROM {{BASE}}\nCOPY [ab].txt /dst/\n', files: tree },
  { name: 'copy-wildcard-question', dockerfile: 'FROM {{BASE}}\nCOPY ?.txt /dst/\n', files: tree },
  { name: 'copy-wildcard-no-match', dockerfile: 'FROM {{BASE}}\nCOPY *.none /dst/\n', files: tree },
  { name: 'copy-wildcard-no-match-beside-match', dockerfile: 'FROM {{BASE}}\nCOPY *.none a.txt /dst/\n', files: tree },
  { name: 'copy-missing-source', dockerfile: 'FROM {{BASE}}\nCOPY nothere /dst/\n', files: tree },
  { name: 'copy-chown-names', upstream: copyFlagsHistory('--chown=daemon:daemon'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=daemon:daemon dir /dst/\n', files: tree },
  { name: 'copy-chown-numeric-creates-dest', upstream: copyFlagsHistory('--chown=1000:1000'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=1000:1000 a.txt /new/deep/dir/\n', files: tree },
  { name: 'copy-chown-user-only', upstream: copyFlagsHistory('--chown=daemon'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=daemon a.txt /dst/\n', files: tree },
  { name: 'copy-chown-unknown-user', upstream: copyFlagsHistory('--chown=nobodyhere'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=nobodyhere a.txt /dst/\n', files: tree },
  { name: 'copy-chown-arg', upstream: copyFlagsHistory('--chown=1:2'), dockerfile: 'FROM {{BASE}}\nARG OWNER=1:2\nCOPY --chown=$OWNER a.txt /dst/\n', files: tree },
  { name: 'copy-creates-parents-root-owned', dockerfile: 'FROM {{BASE}}\nCOPY dir /p/q/r/\n', files: tree },
  { name: 'copy-chmod-octal', upstream: chmodParents('--chmod=0700', { '/dst': '700' }), dockerfile: 'FROM {{BASE}}\nCOPY --chmod=0700 dir a.txt /dst/\n', files: tree },
  { name: 'copy-chmod-octal-3', upstream: chmodParents('--chmod=640', { '/dst': '640' }), dockerfile: 'FROM {{BASE}}\nCOPY --chmod=640 a.txt /dst/\n', files: tree },
  { name: 'copy-chmod-invalid', upstream: { change: 'convert_copy.go rejects a --chmod that is neither octal up to 07777 nor a symbolic mode', expect: error("invalid chmod parameter: '999'. it should be octal string and between 0 and 07777") }, dockerfile: 'FROM {{BASE}}\nCOPY --chmod=999 a.txt /dst/\n', files: tree },
  { name: 'copy-preserves-modes', dockerfile: 'FROM {{BASE}}\nCOPY exec.sh a.txt /dst/\n', files: tree },
  { name: 'copy-symlink-source-followed', dockerfile: 'FROM {{BASE}}\nCOPY link /dst/\n', files: { ...tree, link: { symlink: 'a.txt' } } },
  { name: 'copy-symlink-inside-dir-kept', dockerfile: 'FROM {{BASE}}\nCOPY d /dst/\n', files: { 'd/f': 'f\n', 'd/l': { symlink: 'f' }, 'd/abs': { symlink: '/etc/passwd' } } },
  { name: 'copy-dest-through-symlink', dockerfile: 'FROM {{BASE}}\nRUN mkdir /real && ln -s /real /alias\nCOPY a.txt /alias/\n', files: tree },
  { name: 'copy-overwrite-file', dockerfile: 'FROM {{BASE}}\nCOPY a.txt /etc/passwd\n', files: tree },
  { name: 'copy-relative-dest-workdir', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nCOPY a.txt rel/\nCOPY b.txt .\n', files: tree },
  { name: 'copy-var-substitution', dockerfile: 'FROM {{BASE}}\nENV SRC=a.txt DST=/v/\nCOPY $SRC ${DST}\n', files: tree },
  { name: 'copy-json-form', dockerfile: 'FROM {{BASE}}\nCOPY ["a.txt", "b.txt", "/json dst/"]\n', files: tree },
  { name: 'copy-from-stage', dockerfile: 'FROM {{BASE}} AS build\nRUN mkdir -p /out && echo built > /out/f && chmod 600 /out/f && chown 5:6 /out/f\nFROM scratch\nCOPY --from=build /out /\n' },
  { name: 'copy-from-stage-index', dockerfile: 'FROM {{BASE}}\nRUN echo zero > /z\nFROM scratch\nCOPY --from=0 /z /z\n' },
  { name: 'copy-from-image', dockerfile: 'FROM scratch\nCOPY --from={{BASE}} /etc/passwd /p\n' },
  { name: 'copy-from-stage-wildcard', dockerfile: 'FROM {{BASE}} AS b\nRUN mkdir /o && touch /o/a.log /o/b.log /o/c.txt\nFROM scratch\nCOPY --from=b /o/*.log /logs/\n' },
  { name: 'copy-from-stage-creates-dirs-chown', upstream: copyFlagsHistory('--chown=7:8'), dockerfile: 'FROM {{BASE}} AS b\nRUN mkdir -p /o/d && touch /o/d/f\nFROM {{BASE}}\nCOPY --from=b --chown=7:8 /o /t/u/\n' },
  { name: 'copy-from-forward-reference', upstream: { change: 'convert.go: a COPY --from stage must be dispatched first (v0.11.6 read the later stage)', expect: error('cannot copy from stage "b", it needs to be defined before current stage "a"') }, target: 'a', dockerfile: 'FROM {{BASE}} AS a\nCOPY --from=b /b /x\nFROM {{BASE}} AS b\nRUN echo b > /b\n' },
  { name: 'copy-from-self', dockerfile: 'FROM {{BASE}} AS a\nCOPY --from=a /x /x\n' },
  { name: 'copy-url-rejected', dockerfile: 'FROM {{BASE}}\nCOPY http://127.0.0.1:1/x /x\n' },
  { name: 'copy-link', dockerfile: 'FROM {{BASE}}\nCOPY --link a.txt dir /l/\n', files: tree },
  { name: 'copy-dest-trailing-dot', dockerfile: 'FROM {{BASE}}\nWORKDIR /w\nCOPY a.txt ./\n', files: tree },
  { name: 'add-local-file', dockerfile: 'FROM {{BASE}}\nADD a.txt /add/\n', files: tree },
  { name: 'add-local-tar-extracts', dockerfile: 'FROM {{BASE}}\nADD t.tar /x/\n', files: { 't.tar': { base64: tarBase64() } } },
  { name: 'add-checksum-local-rejected', upstream: { change: 'ADD --checksum left the labs channel (Dockerfile 1.6); convert_copy.go: "checksum requires HTTP(S) or Git sources"', expect: error('checksum requires HTTP(S) or Git sources') }, dockerfile: 'FROM {{BASE}}\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 a.txt /x\n', files: tree },
  { name: 'add-keep-git-dir-local-rejected', dockerfile: 'FROM {{BASE}}\nADD --keep-git-dir a.txt /x\n', files: tree },
  { name: 'copy-unknown-flag', upstream: { change: FLAG_PREFIX_CHANGE, expect: error('unknown flag: --chwn (did you mean chown?)') }, dockerfile: 'FROM {{BASE}}\nCOPY --chwn=1 a.txt /x\n', files: tree },
];

/** A tar holding dir/ (0750) and dir/in.txt (0640, uid 3), written by hand so no tool is needed. */
function tarBase64(): string {
  const blocks: Buffer[] = [];
  const header = (name: string, mode: number, size: number, type: string, uid: number) => {
    const h = Buffer.alloc(512);
    h.write(name, 0);
    h.write(mode.toString(8).padStart(7, '0'), 100);
    h.write(uid.toString(8).padStart(7, '0'), 108);
    h.write('0000000', 116);
    h.write(size.toString(8).padStart(11, '0'), 124);
    h.write('00000000000', 136);
    h.write('        ', 148);
    h.write(type, 156);
    h.write('ustar\u000000', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(sum.toString(8).padStart(6, '0') + '\u0000 ', 148);
    return h;
  };
  blocks.push(header('dir/', 0o750, 0, '5', 0));
  const body = Buffer.from('inside\n');
  blocks.push(header('dir/in.txt', 0o640, body.length, '0', 3));
  const padded = Buffer.alloc(512);
  body.copy(padded);
  blocks.push(padded, Buffer.alloc(1024));
  return Buffer.concat(blocks).toString('base64');
}
