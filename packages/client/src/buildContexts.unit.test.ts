import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientError } from './ClientError.js';
import { namedContextValues, parseBuildContexts } from './buildContexts.js';

test('--build-context: directories, docker-image:// and git URLs; unsupported forms and mistakes exit 2 before any upload', async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'build-contexts-'));
  try {
    mkdirSync(join(cwd, 'src'));
    writeFileSync(join(cwd, 'src/.dockerignore'), 'x.key\n');
    const flags = await parseBuildContexts(['src=./src', 'base=docker-image://alpine:3@sha256:' + 'a'.repeat(64), 'lib=https://h/lib.git#main:dir', 'ssh=git@h:r.git'], cwd);
    assert.deepEqual(flags, [
      { name: 'src', dir: join(cwd, 'src') },
      { name: 'base', value: 'docker-image://alpine:3@sha256:' + 'a'.repeat(64) },
      { name: 'lib', value: 'https://h/lib.git#main:dir' },
      { name: 'ssh', value: 'git@h:r.git' },
    ]);
    const synced: Array<[string, string[]]> = [];
    const values = await namedContextValues(flags, async (dir, ignore) => { synced.push([dir, ignore]); return 'sha256:' + 'b'.repeat(64); });
    assert.equal(values.src, 'local:sha256:' + 'b'.repeat(64));
    assert.deepEqual(synced, [[join(cwd, 'src'), ['x.key']]], 'only the directory is synced, with its own .dockerignore');
    const usage = (pattern: RegExp) => (e: unknown) => e instanceof ClientError && e.exitCode === 2 && pattern.test(e.message) && !e.message.includes('\n');
    await assert.rejects(parseBuildContexts(['noequals'], cwd), usage(/expected name=VALUE/));
    await assert.rejects(parseBuildContexts(['a=./src', 'a=./src'], cwd), usage(/given twice/));
    await assert.rejects(parseBuildContexts(['a=./missing'], cwd), usage(/is not a directory/));
    await assert.rejects(parseBuildContexts(['a=oci-layout:///l'], cwd), usage(/not supported by buildyard/));
    await assert.rejects(parseBuildContexts(['a=https://h/ctx.tar.gz'], cwd), usage(/not supported by buildyard/));
    await assert.rejects(parseBuildContexts(['a=target:build'], cwd), usage(/not supported by buildyard/));
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
