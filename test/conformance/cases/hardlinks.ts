// Hard links in the build context: fsutil's sender makes every later name of a file (in walk
// order, among the names .dockerignore keeps) a hard link to its first name, the receiver links
// it, and COPY keeps the hard links it finds, so the image holds one file with several names.
import type { Case } from '../lib/types.js';

/** d/f and d/h are one file. */
const pair = { 'd/f': 'one file\n', 'd/h': { hardlink: 'd/f' } };
const notTheDockerfile = { '.dockerignore': 'Dockerfile\n.dockerignore\n' };

export const cases: Case[] = [
  { name: 'copy-dir-with-linked-pair', dockerfile: 'FROM {{BASE}}\nCOPY d /o/\n', files: pair },
  { name: 'copy-linked-pair-and-others', dockerfile: 'FROM scratch\nCOPY d /o/\n', files: { ...pair, 'd/a': 'before\n', 'd/z': 'after\n', 'd/g': { hardlink: 'd/f' } } },
  { name: 'copy-link-across-dirs', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { ...notTheDockerfile, 'a/f': 'across\n', 'b/sub/g': { hardlink: 'a/f' } } },
  // The first name is ignored: the next name the walk keeps carries the file, the rest link to it.
  { name: 'copy-link-first-name-ignored', dockerfile: 'FROM scratch\nCOPY . /o/\n', files: { '.dockerignore': 'Dockerfile\n.dockerignore\na\n', 'a/first': 'ignored first\n', 'd/f': { hardlink: 'a/first' }, 'd/h': { hardlink: 'a/first' } } },
  { name: 'copy-linked-name-alone', dockerfile: 'FROM {{BASE}}\nCOPY d/h /x\n', files: pair },
  { name: 'copy-link-flag-linked-pair', dockerfile: 'FROM {{BASE}}\nCOPY --link d /o/\n', files: pair },
  // Each source, and each match of a wildcard, is copied on its own (a copier per match): two of
  // them naming one file give two files.
  { name: 'copy-linked-names-as-two-sources', dockerfile: 'FROM scratch\nCOPY d/f d/h /o/\n', files: pair },
  { name: 'copy-linked-names-by-wildcard', dockerfile: 'FROM scratch\nCOPY d/* /o/\n', files: pair },
  { name: 'copy-linked-executable', dockerfile: 'FROM scratch\nCOPY d /o/\n', files: { 'd/run.sh': { content: '#!/bin/sh\n', mode: 0o755 }, 'd/again.sh': { hardlink: 'd/run.sh' } } },
  // A RUN sees the context's link in a bind mount (cp -a keeps it).
  { name: 'run-bind-context-linked-pair', dockerfile: 'FROM {{BASE}}\nRUN --mount=type=bind,source=d,target=/m cp -a /m /o\n', files: pair },
];
