// Runs inside the test's "outside" network namespace (see outsideNetwork.ts): an HTTP server
// answering on every address of the namespace with a line naming the address it was reached
// on, and a DNS server answering A queries under the test domain with the web address.
// `/redirect?to=<url>` answers 302 to that URL (a public address sending a fetch elsewhere).
// On the web address, port 81 accepts and never answers and port 82 answers 200 with a huge
// length and then drips a byte every 100 ms; each of their connections is reported on stdout
// (`connection <port> <n> open|closed`) so the test sees the worker connect and hang up.
// Plain JavaScript without dependencies: it is started with `ip netns exec NS node <file>`.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';

const cfg = JSON.parse(process.argv[2]);
const labels = { [cfg.web]: 'hello from outside', [cfg.denied]: 'DENIED-SERVICE', [cfg.metadata]: 'METADATA-SERVICE' };

const http = createServer((req, res) => {
  const to = new URL(req.url ?? '/', 'http://x').searchParams.get('to');
  if (req.url?.startsWith('/redirect?') && to) { res.writeHead(302, { location: to }).end(); return; }
  const local = req.socket.localAddress.replace(/^::ffff:/, '');
  res.writeHead(200, { 'content-type': 'text/plain' }).end(`${labels[local] ?? 'OUTSIDE'} ${cfg.nonce}\n`);
});

const dns = createSocket('udp4');
dns.on('message', (msg, rinfo) => {
  if (msg.length < 17) return;
  let off = 12;
  const labelsOf = [];
  while (off < msg.length && msg[off] !== 0) {
    labelsOf.push(msg.subarray(off + 1, off + 1 + msg[off]).toString('latin1'));
    off += msg[off] + 1;
  }
  const qtype = msg.readUInt16BE(off + 1);
  const question = msg.subarray(12, off + 5);
  const name = labelsOf.join('.').toLowerCase();
  const known = name === cfg.domain || name.endsWith('.' + cfg.domain);
  const answerA = known && qtype === 1;
  const header = Buffer.alloc(12);
  header.writeUInt16BE(msg.readUInt16BE(0), 0);
  header.writeUInt16BE(known ? 0x8180 : 0x8183, 2); // response, RD+RA; NXDOMAIN when unknown
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answerA ? 1 : 0, 6);
  const parts = [header, question];
  if (answerA) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // name: pointer to the question
    rr.writeUInt16BE(1, 2); // A
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(60, 6);
    rr.writeUInt16BE(4, 10);
    cfg.web.split('.').forEach((b, i) => rr.writeUInt8(Number(b), 12 + i));
    parts.push(rr);
  }
  dns.send(Buffer.concat(parts), rinfo.port, rinfo.address);
});

let connections = 0;
const stalling = (port, onConnection) => createTcpServer((socket) => {
  const n = ++connections;
  process.stdout.write(`connection ${port} ${n} open\n`);
  socket.on('error', () => undefined);
  socket.on('close', () => process.stdout.write(`connection ${port} ${n} closed\n`));
  socket.resume(); // reads the request, so the peer's hang-up is seen as soon as it comes
  onConnection(socket);
});
const silent = stalling(81, () => { /* never answers */ });
const drip = stalling(82, (socket) => {
  socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n');
  const timer = setInterval(() => socket.write('x'), 100);
  socket.on('close', () => clearInterval(timer));
});

await Promise.all([
  new Promise((resolve) => http.listen(80, '0.0.0.0', resolve)),
  new Promise((resolve) => silent.listen(81, cfg.web, resolve)),
  new Promise((resolve) => drip.listen(82, cfg.web, resolve)),
  new Promise((resolve) => dns.bind(53, cfg.dns, resolve)),
]);
process.stdout.write('ready\n');

// The test process that started it stops it; if that process dies first (SIGKILL, a crash), this
// is re-parented and goes too instead of lingering in its namespace.
// (process.ppid is read once at start-up, so the live value comes from /proc.)
const ppid = () => Number(readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
const parent = ppid();
setInterval(() => { if (ppid() !== parent) process.exit(0); }, 500).unref();

