// COPY/ADD --link (dockerfile2llb/convert_copy.go dispatchCopy): without --chmod the copy is made
// on llb.Scratch() and merged onto the stage, so its layer holds the copied entries and the
// parents the copy made, fresh (0755, root or --chown), replacing what the stage has there:
// a symlink on the way, a directory's mode and owner, a directory where a file lands.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Case } from '../lib/types.js';
import { copyFlagsHistory, heredocMode } from './upstream.js';

const files = { 'a.txt': 'a\n', 'b.txt': 'b\n', 'dir/x': 'x\n', 'dir/sub/y.log': 'y\n' };

/** A plain tar of `dir/` (0750) and `dir/in.txt` (0640), written by GNU tar with fixed metadata. */
function smallTar(): Buffer {
  const work = mkdtempSync(join(tmpdir(), 'link-case-'));
  try {
    mkdirSync(join(work, 'dir'));
    writeFileSync(join(work, 'dir/in.txt'), 'inside\n');
    chmodSync(join(work, 'dir'), 0o750);
    chmodSync(join(work, 'dir/in.txt'), 0o640);
    return execFileSync('tar', ['--format=ustar', '--no-recursion', '--mtime=@1693526400', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '-C', work, 'dir', 'dir/in.txt']);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export const cases: Case[] = [
  // The destination side: parents are the layer's own, not the stage's.
  { name: 'link-through-symlink', dockerfile: 'FROM {{BASE}}\nRUN ln -s /real /alias\nCOPY --link a.txt /alias/\n', files },
  { name: 'link-resets-tmp', dockerfile: 'FROM {{BASE}}\nCOPY --link a.txt /tmp/\n', files },
  { name: 'link-resets-root-home', dockerfile: 'FROM {{BASE}}\nCOPY --link a.txt /root/\n', files },
  { name: 'link-workdir-of-user', dockerfile: 'FROM {{BASE}}\nUSER daemon\nWORKDIR /w\nCOPY --link a.txt rel/\n', files },
  { name: 'link-into-existing-dir', dockerfile: 'FROM {{BASE}}\nRUN mkdir -m 0750 /d && echo keep > /d/old && chown 7:8 /d\nCOPY --link a.txt b.txt /d/\n', files },
  { name: 'link-dir-source', dockerfile: 'FROM {{BASE}}\nRUN mkdir -m 0700 /d && echo keep > /d/old\nCOPY --link dir /d\nCOPY --link dir /o/\n', files },
  { name: 'link-file-onto-dir', dockerfile: 'FROM {{BASE}}\nRUN mkdir /d && echo keep > /d/old\nCOPY --link a.txt /d\n', files },
  { name: 'link-dir-to-root', dockerfile: 'FROM {{BASE}}\nCOPY --link dir /\n', files },
  // The source side is a plain copy's.
  { name: 'link-from-stage-keeps-owner', dockerfile: 'FROM {{BASE}} AS b\nRUN mkdir /src && echo s > /src/f && chown 5:6 /src/f\nFROM {{BASE}}\nCOPY --link --from=b /src/f /tmp/\n' },
  { name: 'link-glob', dockerfile: 'FROM {{BASE}}\nCOPY --link *.txt /tmp/g/\n', files },
  { name: 'link-heredoc-and-file', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY --link a.txt <<EOF /tmp/\nbody\nEOF\n', files },
  { name: 'link-heredoc-only', upstream: heredocMode, dockerfile: 'FROM {{BASE}}\nCOPY --link <<EOF /tmp/\nbody\nEOF\n' },
  { name: 'link-add-local-tar', dockerfile: 'FROM {{BASE}}\nADD --link a.tar /tmp/x/\n', files: { 'a.tar': { base64: smallTar().toString('base64') } } },
  { name: 'link-add-url', dockerfile: 'FROM {{BASE}}\nADD --link {{URL}}/files/data.txt /tmp/\n', served: { body: 'served\n' } },
  // --chown: ids (and "root") only, on the parents the copy makes too; --chmod turns the merge off.
  { name: 'link-chown-ids', upstream: copyFlagsHistory('--chown=1:2'), dockerfile: 'FROM {{BASE}}\nCOPY --link --chown=1:2 a.txt /tmp/new/\n', files },
  { name: 'link-chown-root-name', upstream: copyFlagsHistory('--chown=root:root'), dockerfile: 'FROM {{BASE}}\nCOPY --link --chown=root:root a.txt /tmp/\n', files },
  { name: 'link-chown-name', dockerfile: 'FROM {{BASE}}\nCOPY --link --chown=daemon a.txt /o/\n', files },
  { name: 'link-chmod-not-merged', upstream: copyFlagsHistory('--chmod=600'), dockerfile: 'FROM {{BASE}}\nCOPY --link --chmod=600 a.txt /tmp/\n', files },
];
