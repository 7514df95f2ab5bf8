// Revalidation of ADD <url> as BuildKit's HTTP source does it, against a node:http server on
// 127.0.0.1 that records every request it gets.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import { addUrl } from './addUrl.js';
import { FileOpError } from './FileOpError.js';
import { workspace } from './fixtures.test-util.js';
import { DirUrlValidatorStore, revalidateUrl } from './revalidateUrl.js';

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const LAST_MODIFIED = 'Wed, 21 Oct 2015 07:28:00 GMT';

describe('revalidateUrl', () => {
  const ws = workspace();
  let server: Server;
  let base = '';
  /** What the server serves at /file; `etag` null: no ETag header. */
  let content = { body: 'one\n', etag: '"v1"' as string | null };
  /** The server's bugs: HEAD answers without an ETag; a 304 without an ETag; a 304 naming another ETag. */
  let quirks = { headWithoutEtag: false, notModifiedWithoutEtag: false, notModifiedEtag: null as string | null };
  let requests: Array<{ method: string; headers: IncomingHttpHeaders }> = [];
  let n = 0;
  const store = () => new DirUrlValidatorStore(join(ws.base, `validators${n++}`));

  before(async () => {
    server = createServer((req, res) => {
      requests.push({ method: req.method ?? '', headers: req.headers });
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/file') { res.writeHead(404); res.end(); return; }
      const { body, etag } = content;
      const asked = (req.headers['if-none-match'] ?? '').split(',').map((t) => t.trim());
      if (quirks.notModifiedEtag !== null && req.method === 'GET' && asked[0]) {
        res.writeHead(304, { etag: quirks.notModifiedEtag }); res.end(); return;
      }
      if (etag && asked.includes(etag) && !(req.method === 'HEAD' && quirks.headWithoutEtag)) {
        res.writeHead(304, quirks.notModifiedWithoutEtag ? {} : { etag }); res.end(); return;
      }
      const headers: Record<string, string> = { 'last-modified': LAST_MODIFIED, 'content-length': String(Buffer.byteLength(body)) };
      if (etag && !(req.method === 'HEAD' && quirks.headWithoutEtag)) headers.etag = etag;
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  beforeEach(() => {
    content = { body: 'one\n', etag: '"v1"' };
    quirks = { headWithoutEtag: false, notModifiedWithoutEtag: false, notModifiedEtag: null };
    requests = [];
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    ws.cleanup();
  });

  const check = (s: DirUrlValidatorStore, scope = 'alice') => revalidateUrl({ url: `${base}/file`, store: s, scope, tmpDir: ws.base, retries: 0 });
  const summary = () => requests.map((r) => `${r.method} ${r.headers['if-none-match'] ?? '-'}`);

  test('first a plain GET that downloads; then a HEAD confirms the remembered ETag without a download', async () => {
    const s = store();
    const first = await check(s);
    assert.equal(first.how, 'downloaded');
    assert.equal(first.digest, sha('one\n'));
    assert.equal(first.lastModified?.toUTCString(), LAST_MODIFIED);
    assert.equal(readFileSync(first.fetched!.file, 'utf8'), 'one\n');
    await first.release();
    await assert.rejects(fsp.access(first.fetched!.file));
    const second = await check(s);
    assert.deepEqual([second.how, second.digest, second.fetched, second.lastModified?.toUTCString()], ['head', sha('one\n'), undefined, LAST_MODIFIED]);
    assert.deepEqual(summary(), ['GET -', 'HEAD "v1"']);
  });

  test('a changed file (new ETag) is downloaded again with If-None-Match, and its digest is the new one', async () => {
    const s = store();
    await (await check(s)).release();
    content = { body: 'two\n', etag: '"v2"' };
    const changed = await check(s);
    assert.deepEqual([changed.how, changed.digest], ['downloaded', sha('two\n')]);
    await changed.release();
    assert.deepEqual(summary(), ['GET -', 'HEAD "v1"', 'GET "v1"']);
    // Both versions are remembered: going back to the first needs no download.
    content = { body: 'one\n', etag: '"v1"' };
    requests = [];
    assert.equal((await check(s)).how, 'head');
    assert.deepEqual(summary(), ['HEAD "v2", "v1"']);
  });

  test('a HEAD without ETag falls back to the conditional GET, whose 304 confirms; a 304 without ETag refers to the only one asked', async () => {
    const s = store();
    await (await check(s)).release();
    quirks.headWithoutEtag = true;
    const viaGet = await check(s);
    assert.deepEqual([viaGet.how, viaGet.digest, viaGet.fetched], ['not-modified', sha('one\n'), undefined]);
    quirks.notModifiedWithoutEtag = true;
    assert.equal((await check(s)).how, 'not-modified');
    assert.deepEqual(summary(), ['GET -', 'HEAD "v1"', 'GET "v1"', 'HEAD "v1"', 'GET "v1"']);
  });

  test('a 304 naming an ETag never sent fails in one line', async () => {
    const s = store();
    await (await check(s)).release();
    quirks = { headWithoutEtag: true, notModifiedWithoutEtag: false, notModifiedEtag: '"other"' };
    await assert.rejects(check(s), (e: unknown) => e instanceof FileOpError && e.code === 'EFETCH' && /304 Not Modified naming an ETag it never sent \("other"\)/.test(e.message) && !e.message.includes('\n'));
  });

  test('without ETags every check downloads; the digest follows the content', async () => {
    const s = store();
    content = { body: 'one\n', etag: null };
    const a = await check(s);
    content = { body: 'three\n', etag: null };
    const b = await check(s);
    assert.deepEqual([a.how, a.digest, b.how, b.digest], ['downloaded', sha('one\n'), 'downloaded', sha('three\n')]);
    await a.release();
    await b.release();
    assert.deepEqual(summary(), ['GET -', 'GET -']);
  });

  test('one scope\'s validators are not sent for another scope', async () => {
    const s = store();
    await (await check(s, 'alice')).release();
    const bob = await check(s, 'bob');
    assert.equal(bob.how, 'downloaded');
    await bob.release();
    assert.deepEqual(summary(), ['GET -', 'GET -']);
  });

  test('addUrl places a body fetched by the check; without Last-Modified the mtime is the epoch, as BuildKit', async () => {
    const s = store();
    const got = await check(s);
    const dest = join(ws.base, `dest${n++}`);
    await fsp.mkdir(dest);
    const placed = await addUrl({ url: `${base}/file`, destRoot: dest, dest: '/d/', fetched: got.fetched });
    await got.release();
    assert.equal(placed.path, join(dest, 'd/file'));
    assert.equal(placed.digest, sha('one\n'));
    assert.equal(statSync(placed.path).mtime.toUTCString(), LAST_MODIFIED);
    assert.equal(requests.length, 1, 'no second download');
    const plain = await addUrl({ url: `${base}/file`, destRoot: dest, dest: '/e', fetched: { ...got.fetched!, lastModified: null, file: placed.path } });
    assert.equal(statSync(plain.path).mtimeMs, 0);
  });
});
