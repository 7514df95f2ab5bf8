// ADD <url> under the build's network policy: the address of every hop (the URL's, each
// redirect's) is vetted before any connection is opened, names are resolved once and the
// socket goes to exactly the vetted address, and a refusal is one line that is not retried.
// Needs root (addUrl sets ownership). Servers listen on 127.0.0.0/8; the policy here refuses
// 127.0.0.1 only, standing in for the worker's (packages/executor egressRules).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { addUrl } from './addUrl.js';
import { FileOpError } from './FileOpError.js';
import { workspace } from './fixtures.test-util.js';

const ws = workspace();
const servers: Server[] = [];
after(async () => {
  for (const s of servers) s.close();
  ws.cleanup();
});

const refuseAddress = (address: string) => (address === '127.0.0.1' ? 'test policy' : undefined);

/** An HTTP server on `host`; records each request's Host header. */
async function serve(host: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; hosts: string[] }> {
  const hosts: string[] = [];
  const server = createServer((req, res) => { hosts.push(req.headers.host ?? ''); handler(req, res); });
  servers.push(server);
  server.listen(0, host);
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, hosts };
}

const refused = (pattern: RegExp) => (e: unknown) => {
  assert.ok(e instanceof FileOpError && e.code === 'EREFUSED', String(e));
  assert.match(e.message, pattern);
  assert.ok(!e.message.includes('\n'));
  return true;
};

test('a URL naming a refused address fails before connecting, once, with the line and the setting', async () => {
  const target = await serve('127.0.0.1', (_req, res) => res.end('secret'));
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  const url = `http://127.0.0.1:${target.port}/x`;
  await assert.rejects(addUrl({ url, destRoot: dest, dest: '/f', refuseAddress, line: 3 }),
    refused(new RegExp(`^ADD http://127\\.0\\.0\\.1:${target.port}/x at line 3: the address 127\\.0\\.0\\.1 is not reachable from builds \\(test policy\\)$`)));
  // A name resolving there is refused the same way.
  await assert.rejects(addUrl({ url: `http://localhost:${target.port}/x`, destRoot: dest, dest: '/f', refuseAddress }),
    refused(/^ADD http:\/\/localhost:\d+\/x: the address 127\.0\.0\.1 is not reachable from builds \(test policy\)$/));
  // And IPv6, which builds never reach, even as an IPv4-mapped loopback.
  await assert.rejects(addUrl({ url: `http://[::ffff:127.0.0.1]:${target.port}/x`, destRoot: dest, dest: '/f', refuseAddress: (a) => (a.includes(':') ? 'IPv4 only' : undefined) }),
    refused(/the address ::ffff:7f00:1 is not reachable from builds \(IPv4 only\)$/));
  assert.deepEqual(target.hosts, [], 'no request reached the refused server');
});

test('each redirect hop is vetted: a public-looking URL redirecting to a refused address fails', async () => {
  const target = await serve('127.0.0.1', (_req, res) => res.end('secret'));
  const hop = await serve('127.0.0.2', (_req, res) => res.writeHead(302, { location: `http://127.0.0.1:${target.port}/meta-data` }).end());
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  await assert.rejects(addUrl({ url: `http://127.0.0.2:${hop.port}/start`, destRoot: dest, dest: '/f', refuseAddress }),
    refused(new RegExp(`^ADD http://127\\.0\\.0\\.2:${hop.port}/start: redirected to http://127\\.0\\.0\\.1:${target.port}/meta-data: the address 127\\.0\\.0\\.1 is not reachable`)));
  assert.equal(hop.hosts.length, 1, 'the first hop was fetched once (no retry after the refusal)');
  assert.deepEqual(target.hosts, []);
});

test('an allowed name downloads through the vetted address, its Host header unchanged', async () => {
  const allowLoopback = (address: string) => (address === '127.0.0.1' ? undefined : 'test policy');
  const target = await serve('127.0.0.1', (_req, res) => res.end('payload'));
  const dest = await fsp.mkdtemp(join(ws.base, 'd-'));
  const got = await addUrl({ url: `http://localhost:${target.port}/file.txt`, destRoot: dest, dest: '/', refuseAddress: allowLoopback });
  assert.equal(await fsp.readFile(got.path, 'utf8'), 'payload');
  assert.deepEqual(target.hosts, [`localhost:${target.port}`]);
});
