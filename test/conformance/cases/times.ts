// Timestamps: which times a layer keeps (the context's, a stage's, the base image's, a RUN's own
// `touch -d`) and which the builder stamps, and what SOURCE_DATE_EPOCH pins. Context entries
// carry a fixed time (CONTEXT_MTIME); the suite compares only times a case fixed.
import type { Case } from '../lib/types.js';
import { copyFlagsHistory } from './upstream.js';

/**
 * The context of most cases. Its contents name the case, so no case takes a step from another
 * out of the cache: the times a case shows are made by its own steps.
 */
const tree = (tag: string) => ({ 'f.txt': `f ${tag}\n`, 'd/a': `a ${tag}\n`, 'd/sub/b': `b ${tag}\n`, 'd/empty': { dir: true as const }, 'd/link': { symlink: 'a' }, 'x.sh': { content: `#!/bin/sh\n# ${tag}\n`, mode: 0o755 } });
/** 2017-07-14: newer than the context's time (2001), older than any build. */
const EPOCH = '1500000000';
/** 2000-01-01: older than the context's time. */
const OLD_EPOCH = '946684800';

export const cases: Case[] = [
  // COPY and ADD from the context keep every entry's time; the destinations they create do not.
  // (The Dockerfile names the test registry's port, which differs per run: left out.)
  { name: 'copy-context-tree', dockerfile: 'FROM {{BASE}}\nCOPY . /c/\n', files: { ...tree('copy-context-tree'), '.dockerignore': 'Dockerfile\n' } },
  { name: 'copy-dir-into-new-dest', dockerfile: 'FROM {{BASE}}\nCOPY d /new/deeper/\n', files: tree('copy-dir-into-new-dest') },
  { name: 'copy-dir-into-existing-dest', dockerfile: 'FROM {{BASE}}\nCOPY d /etc/\n', files: tree('copy-dir-into-existing-dest') },
  { name: 'copy-file-into-new-dir', dockerfile: 'FROM {{BASE}}\nCOPY f.txt x.sh /made/\n', files: tree('copy-file-into-new-dir') },
  { name: 'copy-file-renamed', dockerfile: 'FROM {{BASE}}\nCOPY f.txt /renamed\n', files: tree('copy-file-renamed') },
  { name: 'copy-symlink-itself', dockerfile: 'FROM {{BASE}}\nCOPY d/link /l\n', files: tree('copy-symlink-itself') },
  { name: 'copy-wildcard', dockerfile: 'FROM {{BASE}}\nCOPY d/* /w/\n', files: tree('copy-wildcard') },
  { name: 'copy-chown', upstream: copyFlagsHistory('--chown=5:6'), dockerfile: 'FROM {{BASE}}\nCOPY --chown=5:6 d /o/\n', files: tree('copy-chown') },
  { name: 'copy-link', dockerfile: 'FROM {{BASE}}\nCOPY --link d /o/\n', files: tree('copy-link') },
  { name: 'add-local-file', dockerfile: 'FROM {{BASE}}\nADD f.txt d /a/\n', files: tree('add-local-file') },
  { name: 'copy-file-explicit-time', dockerfile: 'FROM {{BASE}}\nCOPY old new /t/\n', files: { old: { content: 'o\n', mtime: 86_400 }, new: { content: 'n\n', mtime: 1_300_000_000.5 } } },
  // Between stages and from images.
  { name: 'copy-from-stage', dockerfile: 'FROM {{BASE}} AS s\nCOPY d /src/\nRUN touch -d @1200000000 /src/sub/b\nFROM {{BASE}}\nCOPY --from=s /src /dst\n', files: tree('copy-from-stage') },
  { name: 'copy-from-image', dockerfile: 'FROM {{BASE}}\nCOPY --from={{BASE}} /bin/busybox /bin/sh /from-image/\n' },
  { name: 'from-stage-keeps-layers', dockerfile: 'FROM {{BASE}} AS s\nCOPY f.txt /f\nFROM s\nCOPY x.sh /x\n', files: tree('from-stage-keeps-layers') },
  // A RUN's own times are kept in its layer; what it only reads keeps the base's.
  { name: 'run-touch-fixed-times', dockerfile: 'FROM {{BASE}}\nRUN mkdir -p /t/d && echo x > /t/f && touch -d @1100000000 /t/f && touch -d @1000000001 /t/d && ln -s f /t/l && touch -h -d @1000000002 /t/l && touch -d @1000000003 /t\n' },
  { name: 'run-chmod-keeps-time', dockerfile: 'FROM {{BASE}}\nCOPY f.txt /f\nRUN chmod 600 /f\n', files: tree('run-chmod-keeps-time') },
  { name: 'run-bind-rw-context-times', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,source=d,target=/m,rw echo changed > /m/a && cp -a /m /copy\n', files: tree('run-bind-rw-context-times') },
  { name: 'run-reads-context-copy', dockerfile: 'FROM {{BASE}}\nCOPY d /d\nRUN cat /d/a /d/sub/b > /dev/null\n', files: tree('run-reads-context-copy') },
  { name: 'workdir-made', dockerfile: 'FROM {{BASE}}\nWORKDIR /w/x\nCOPY f.txt .\n', files: tree('workdir-made') },
  // SOURCE_DATE_EPOCH: the image's and the history's times; layers keep their files' times.
  { name: 'epoch-metadata-only', dockerfile: 'FROM {{BASE}}\nENV A=1\nLABEL l=v\n', args: { SOURCE_DATE_EPOCH: EPOCH } },
  { name: 'epoch-run-and-copy', dockerfile: 'FROM {{BASE}}\nRUN echo x > /r\nCOPY f.txt d /c/\nENV A=1\n', files: tree('epoch-run-and-copy'), args: { SOURCE_DATE_EPOCH: EPOCH } },
  { name: 'epoch-older-than-context', dockerfile: 'FROM {{BASE}}\nCOPY f.txt d /c/\nRUN touch -d @1100000000 /c/f.txt\n', files: tree('epoch-older-than-context'), args: { SOURCE_DATE_EPOCH: OLD_EPOCH } },
  {
    name: 'epoch-workdir', dockerfile: 'FROM {{BASE}}\nWORKDIR /w/x\nWORKDIR /etc\n', args: { SOURCE_DATE_EPOCH: EPOCH },
    // Its parent /w then carries the time /w/x gave it, and /etc (which exists) its own.
    upstream: { change: 'convert.go dispatchWorkdir makes the directory with llb.WithCreatedTime(SOURCE_DATE_EPOCH)', patch: (r) => { for (const f of r.files ?? []) if (f.path === '/w/x') f.mtime = Number(EPOCH); return r; } },
  },
  // The image output's source-date-epoch (BuildKit's exporter attribute): it clamps the image's
  // and the history's times as the build arg does; with both, new entries say the earlier.
  { name: 'output-epoch', dockerfile: 'FROM {{BASE}}\nRUN echo x > /r\nCOPY f.txt d /c/\nENV A=1\n', files: tree('output-epoch'), outputAttrs: { 'source-date-epoch': EPOCH } },
  { name: 'output-epoch-before-arg', dockerfile: 'FROM {{BASE}}\nCOPY f.txt /f\nENV A=1\n', files: tree('output-epoch-before-arg'), args: { SOURCE_DATE_EPOCH: EPOCH }, outputAttrs: { 'source-date-epoch': OLD_EPOCH } },
  { name: 'output-epoch-after-arg', dockerfile: 'FROM {{BASE}}\nCOPY f.txt /f\nENV A=1\n', files: tree('output-epoch-after-arg'), args: { SOURCE_DATE_EPOCH: OLD_EPOCH }, outputAttrs: { 'source-date-epoch': EPOCH } },
  { name: 'output-epoch-empty', dockerfile: 'FROM {{BASE}}\nCOPY f.txt /f\n', files: tree('output-epoch-empty'), args: { SOURCE_DATE_EPOCH: EPOCH }, outputAttrs: { 'source-date-epoch': '' } },
  {
    name: 'output-epoch-rewrite', dockerfile: 'FROM {{BASE}}\nRUN echo x > /r\nCOPY f.txt d /c/\n', files: tree('output-epoch-rewrite'), outputAttrs: { 'source-date-epoch': EPOCH, 'rewrite-timestamp': 'true' },
    // Every time the build's clock gave (left out of the record) is the epoch; older ones stay.
    upstream: {
      change: 'exporter/containerimage: rewrite-timestamp=true clamps the mtimes in new layers to the exporter\'s epoch (source-date-epoch, else SOURCE_DATE_EPOCH)',
      patch: (r) => { for (const f of r.files ?? []) if (f.mtime === undefined && f.type !== 'deleted' && !f.implied) f.mtime = Number(EPOCH); return r; },
    },
  },
  { name: 'epoch-multi-stage', dockerfile: 'FROM {{BASE}} AS s\nCOPY d /d\nFROM scratch\nCOPY --from=s /d /out\n', files: tree('epoch-multi-stage'), args: { SOURCE_DATE_EPOCH: EPOCH } },
];
