// Needs root (ownership checks). Serves files from a node:http server on 127.0.0.1.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp, lstatSync, readFileSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { addUrl } from './addUrl.js';
import { copy } from './copy.js';
import { FileOpError } from './FileOpError.js';
import { makeTar, workspace, compress } from './fixtures.test-util.js';
import { mkdir } from './mkdir.js';
import { mkfile } from './mkfile.js';

const BODY = Buffer.from('downloaded content\n');
const DIGEST = `sha256:${createHash('sha256').update(BODY).digest('hex')}`;
const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';

describe('addUrl', () => {
  const ws = workspace();
  let server: Server;
  let base = '';
  let tgz: Buffer;
  let flaky = 0;
  const pending = new Set<import('node:http').ServerResponse>();
  let n = 0;
  let missing = 0;
  const freshDest = async () => { const d = join(ws.base, `dest${n++}`); await fsp.mkdir(d); return d; };
  const isCode = (code: string, re?: RegExp) => (e: unknown) => e instanceof FileOpError && e.code === code && !e.message.includes('\n') && (!re || re.test(e.message));

  before(async () => {
    tgz = compress(await makeTar([{ name: 'inside.txt', content: 'from tar' }]), 'gzip');
    server = createServer((req, res) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (path === '/files/data.txt' || path === '/') { res.writeHead(200, { 'last-modified': LAST_MODIFIED }); res.end(BODY); return; }
      if (path === '/pkg.tar.gz') { res.writeHead(200); res.end(tgz); return; }
      if (path === '/flaky') { if (flaky++ < 1) { res.writeHead(503); res.end(); return; } res.writeHead(200); res.end(BODY); return; }
      if (path === '/hang') { pending.add(res); res.writeHead(200); res.write('partial'); return; }
      if (path === '/missing') missing++;
      res.writeHead(404); res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    for (const res of pending) res.destroy();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    ws.cleanup();
  });

  test('dest/ takes the file name from the URL; mode 0600, root-owned, mtime from Last-Modified; checksum ok', async () => {
    const d = await freshDest();
    const r = await addUrl({ url: `${base}/files/data.txt?x=1`, destRoot: d, dest: '/dl/', checksum: DIGEST });
    assert.equal(r.path, join(d, 'dl/data.txt'));
    assert.equal(r.digest, DIGEST);
    const st = lstatSync(r.path);
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o600, 0, 0]);
    assert.equal(st.mtime.toUTCString(), LAST_MODIFIED);
    assert.deepEqual(readFileSync(r.path), BODY);
  });

  test('the attacker: a destination symlink (absolute, ..-laden, through /proc/self/root, chained) leads a COPY, heredoc or ADD <url> only to a place inside the root; a loop fails in one line', async () => {
    const d = await freshDest();
    await fsp.writeFile(join(ws.src, 'payload'), 'payload');
    const host = join(ws.base, 'host-file');
    await fsp.writeFile(host, 'host');
    const tag = basename(ws.base); // names no host file has
    const links: Record<string, string> = {
      abs: host, // the worker's path of a host file: means that path inside the root
      dotdot: `/../../../../../../etc/${tag}-x`, rel: `../../../../../tmp/${tag}-y`, viaproc: `/proc/self/root/tmp/${tag}-z`,
      chain1: 'chain2', chain2: '/up/../../chain3', chain3: `../../../tmp/${tag}-w`, loop1: 'loop2', loop2: '/loop1',
    };
    for (const [name, target] of Object.entries(links)) await fsp.symlink(target, join(d, name));
    const inside = { abs: host.slice(1), dotdot: `etc/${tag}-x`, rel: `tmp/${tag}-y`, viaproc: `proc/self/root/tmp/${tag}-z`, chain1: `tmp/${tag}-w` };
    for (const [name, lands] of Object.entries(inside)) {
      for (const write of [
        () => copy({ srcRoot: ws.src, sources: ['payload'], destRoot: d, dest: `/${name}` }),
        () => mkfile({ root: d, path: `/${name}`, content: 'payload' }),
        () => addUrl({ url: `${base}/files/data.txt`, destRoot: d, dest: `/${name}` }),
      ]) {
        await fsp.rm(join(d, lands), { force: true });
        await write();
        assert.ok(lstatSync(join(d, name)).isSymbolicLink(), name);
        assert.ok(lstatSync(join(d, lands)).isFile(), `${name} -> /${lands}`);
      }
    }
    assert.equal(readFileSync(host, 'utf8'), 'host');
    for (const p of [`/etc/${tag}-x`, `/tmp/${tag}-y`, `/tmp/${tag}-z`, `/tmp/${tag}-w`]) assert.ok(!existsSync(p), p);
    for (const write of [
      () => copy({ srcRoot: ws.src, sources: ['payload'], destRoot: d, dest: '/loop1' }),
      () => mkfile({ root: d, path: '/loop1', content: 'x' }),
      () => addUrl({ url: `${base}/files/data.txt`, destRoot: d, dest: '/loop1' }),
    ]) await assert.rejects(write(), isCode('ELOOP', /^cannot write \/loop1: too many levels of symbolic links/));
  });

  test('a dest without / is the file name; chmod and owner apply; URL root is named "__unnamed__" (as the Dockerfile frontend of BuildKit)', async () => {
    const d = await freshDest();
    const r = await addUrl({ url: `${base}/files/data.txt`, destRoot: d, dest: '/etc/renamed', chmod: '644', owner: { uid: 33, gid: 34 } });
    assert.equal(r.path, join(d, 'etc/renamed'));
    const st = lstatSync(r.path);
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o644, 33, 34]);
    const idx = await addUrl({ url: `${base}/`, destRoot: d, dest: '/etc' });
    assert.equal(idx.path, join(d, 'etc/__unnamed__'));
  });

  test('checksum mismatch names URL, expected and actual digests', async () => {
    const d = await freshDest();
    const wrong = `sha256:${'0'.repeat(64)}`;
    await assert.rejects(addUrl({ url: `${base}/files/data.txt`, destRoot: d, dest: '/x', checksum: wrong }),
      isCode('ECHECKSUM', new RegExp(`${base}/files/data.txt: digest mismatch ${DIGEST}: ${wrong}; the file served has the first`)));
    assert.equal(existsSync(join(d, 'x')), false);
    await assert.rejects(addUrl({ url: `${base}/files/data.txt`, destRoot: d, dest: '/x', checksum: 'md5:abc' }), isCode('EBADARG', /--checksum/));
  });

  test('archives are stored as-is unless unpack is set', async () => {
    const d = await freshDest();
    const kept = await addUrl({ url: `${base}/pkg.tar.gz`, destRoot: d, dest: '/dl/' });
    assert.deepEqual(readFileSync(kept.path), tgz);
    await addUrl({ url: `${base}/pkg.tar.gz`, destRoot: d, dest: '/unpacked', unpack: true });
    assert.equal(readFileSync(join(d, 'unpacked/inside.txt'), 'utf8'), 'from tar');
  });

  test('404, timeouts and bad schemes are clear errors; 5xx is retried', async () => {
    const d = await freshDest();
    await assert.rejects(addUrl({ url: `${base}/missing`, destRoot: d, dest: '/x', retries: 0 }), isCode('EFETCH', /HTTP 404/));
    await assert.rejects(addUrl({ url: `${base}/hang`, destRoot: d, dest: '/x', retries: 0, timeoutMs: 300 }), isCode('EFETCH', /timed out after 300 ms/));
    await assert.rejects(addUrl({ url: 'file:///etc/passwd', destRoot: d, dest: '/x' }), isCode('EBADARG', /http and https/));
    const r = await addUrl({ url: `${base}/flaky`, destRoot: d, dest: '/flaky', retries: 2 });
    assert.deepEqual(readFileSync(r.path), BODY);
    // A 4xx is an answer, not a failure: it is asked for once, whatever the retries.
    const asked = missing;
    await assert.rejects(addUrl({ url: `${base}/missing`, destRoot: d, dest: '/x', retries: 2 }), isCode('EFETCH', /download failed \(3 attempts\): HTTP 404/));
    assert.equal(missing - asked, 1);
  });
});

describe('mkdir and mkfile', () => {
  const ws = workspace();
  after(() => ws.cleanup());

  test('mkdir -p creates owned directories and follows rootfs symlinks without leaving the root', async () => {
    await fsp.symlink('/', join(ws.dest, 'rootlink'));
    await fsp.mkdir(join(ws.dest, 'exists'), { mode: 0o700 });
    const real = await mkdir({ root: ws.dest, path: '/rootlink/exists/app/data', owner: { uid: 1000, gid: 1000 } });
    assert.equal(real, join(ws.dest, 'exists/app/data'));
    for (const p of ['exists/app', 'exists/app/data']) {
      const st = lstatSync(join(ws.dest, p));
      assert.deepEqual([st.uid, st.mode & 0o7777], [1000, 0o755], p);
    }
    assert.equal(lstatSync(join(ws.dest, 'exists')).uid, 0, 'existing dirs keep their owner');
    await fsp.writeFile(join(ws.dest, 'afile'), '');
    await assert.rejects(mkdir({ root: ws.dest, path: '/afile/sub' }), (e: unknown) => e instanceof FileOpError && e.code === 'ENOTDIR');
  });

  test('mkdir with createdTime dates the directory it makes, through a rootfs link too; one that exists keeps its time', async () => {
    await mkdir({ root: ws.dest, path: '/dated/leaf', createdTime: 1_500_000_000 });
    assert.equal(lstatSync(join(ws.dest, 'dated/leaf')).mtimeMs, 1_500_000_000_000);
    assert.notEqual(lstatSync(join(ws.dest, 'dated')).mtimeMs, 1_500_000_000_000, 'a parent carries the time its new entry gave it, as in BuildKit');
    await fsp.symlink('/dated', join(ws.dest, 'via'));
    await mkdir({ root: ws.dest, path: '/via/second', createdTime: 1_400_000_000 });
    assert.equal(lstatSync(join(ws.dest, 'dated/second')).mtimeMs, 1_400_000_000_000);
    await mkdir({ root: ws.dest, path: '/dated/leaf', createdTime: 1 });
    assert.equal(lstatSync(join(ws.dest, 'dated/leaf')).mtimeMs, 1_500_000_000_000, 'an existing directory is left alone');
  });

  test('mkfile writes content with mode and owner, through a symlink at its path (inside the root, as BuildKit\'s copy of a heredoc)', async () => {
    const outside = join(ws.base, 'outside');
    await fsp.writeFile(outside, 'untouched');
    await fsp.symlink(outside, join(ws.dest, 'trap'));
    await mkfile({ root: ws.dest, path: '/trap', content: 'heredoc\n', mode: 0o755, owner: { uid: 5, gid: 6 } });
    assert.ok(lstatSync(join(ws.dest, 'trap')).isSymbolicLink());
    const st = lstatSync(join(ws.dest, outside));
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o755, 5, 6]);
    assert.equal(readFileSync(join(ws.dest, outside), 'utf8'), 'heredoc\n');
    assert.equal(readFileSync(outside, 'utf8'), 'untouched');
    await mkfile({ root: ws.dest, path: '/new/dir/file', content: new Uint8Array([1, 2, 3]) });
    assert.equal(lstatSync(join(ws.dest, 'new/dir/file')).mode & 0o7777, 0o644);
  });
});
