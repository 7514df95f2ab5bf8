// A context tarball from a URL is the attacker's archive: nothing in it may be written outside
// the directory it is extracted to on the user's machine, also not through a symlink it made.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import tar from 'tar-stream';
import { downloadContext } from './resolveBuildInput.js';

async function tarOf(entries: Array<{ name: string; type?: 'file' | 'symlink' | 'directory'; linkname?: string; body?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  for (const e of entries) pack.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname }, e.body ?? '');
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function served<T>(body: Buffer, fn: (url: string) => Promise<T>): Promise<T> {
  const server = createServer((_req, res) => res.end(body)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    return await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}/context.tar`);
  } finally {
    server.close();
  }
}

test('a context tarball that writes through its own symlink is refused; nothing lands outside', async () => {
  const outside = mkdtempSync(join(tmpdir(), 'buildyard-outside-'));
  try {
    const archive = await tarOf([{ name: 'up', type: 'symlink', linkname: outside }, { name: 'up/pwned', body: 'pwned' }]);
    await served(archive, (url) => assert.rejects(downloadContext(url), /holds "up\/pwned" below its symlink "up"; refusing it/));
    assert.deepEqual(readdirSync(outside), [], 'nothing was written through the link');
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test('a context tarball whose file comes after a symlink of the same name replaces the link; the file it named is untouched', async () => {
  const outside = mkdtempSync(join(tmpdir(), 'buildyard-outside-'));
  writeFileSync(join(outside, 'victim'), 'the user\'s file\n');
  try {
    const archive = await tarOf([{ name: 'x', type: 'symlink', linkname: join(outside, 'victim') }, { name: 'x', body: 'from the tarball\n' }, { name: 'd', type: 'symlink', linkname: outside }, { name: 'd/', type: 'directory' }, { name: 'd/f', body: 'f' }]);
    const dir = await served(archive, (url) => downloadContext(url));
    try {
      assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'the user\'s file\n');
      assert.deepEqual(readdirSync(outside), ['victim']);
      assert.equal(readFileSync(join(dir, 'x'), 'utf8'), 'from the tarball\n');
      assert.equal(readFileSync(join(dir, 'd/f'), 'utf8'), 'f');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    rmSync(outside, { recursive: true, force: true });
  }
});

test('a context tarball keeps symlinks that point anywhere as links, as BuildKit does', async () => {
  const archive = await tarOf([{ name: 'Dockerfile', body: 'FROM scratch\n' }, { name: 'abs', type: 'symlink', linkname: '/etc/passwd' }, { name: 'up', type: 'symlink', linkname: '../..' }]);
  const dir = await served(archive, (url) => downloadContext(url));
  try {
    assert.equal(readlinkSync(join(dir, 'abs')), '/etc/passwd');
    assert.equal(readlinkSync(join(dir, 'up')), '../..');
    assert.ok(existsSync(join(dir, 'Dockerfile')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
