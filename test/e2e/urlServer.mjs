// A web server for ADD <url> revalidation tests, started inside the "outside" network namespace
// (outsideNetwork.ts) with `ip netns exec NS node urlServer.mjs <address> <port>`. It serves one
// file at every path, as the test sets it on stdin, one JSON line per change:
//   {"body": "...", "etag": "\"v1\"" | null, "lastModified": "<HTTP date>" | null, "contentDisposition": "..." | null}
// answered `ok`; `{"sync": true}` is answered `synced`. Every request is reported on stdout as
// `request {"method", "path", "ifNoneMatch"}` before it is answered, so once `synced` arrives
// the test has read every request made before it. ETags are honoured in If-None-Match (304).
// Plain JavaScript without dependencies.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const [address, port] = process.argv.slice(2);
let file = { body: '', etag: null, lastModified: null, contentDisposition: null };

const server = createServer((req, res) => {
  const ifNoneMatch = req.headers['if-none-match'] ?? null;
  process.stdout.write(`request ${JSON.stringify({ method: req.method, path: req.url, ifNoneMatch })}\n`);
  const headers = { 'content-type': 'application/octet-stream', 'content-length': String(Buffer.byteLength(file.body)) };
  if (file.etag) headers.etag = file.etag;
  if (file.lastModified) headers['last-modified'] = file.lastModified;
  if (file.contentDisposition) headers['content-disposition'] = file.contentDisposition;
  if (file.etag && ifNoneMatch && ifNoneMatch.split(',').map((t) => t.trim()).includes(file.etag)) {
    res.writeHead(304, { etag: file.etag }).end();
    return;
  }
  res.writeHead(200, headers).end(req.method === 'HEAD' ? undefined : file.body);
});

createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  if (msg.sync) { process.stdout.write('synced\n'); return; }
  file = { body: msg.body, etag: msg.etag ?? null, lastModified: msg.lastModified ?? null, contentDisposition: msg.contentDisposition ?? null };
  process.stdout.write('ok\n');
});
process.stdin.on('end', () => process.exit(0));

server.listen(Number(port), address, () => process.stdout.write('ready\n'));
