// A git server for tests: `git http-backend` (smart HTTP, protocol v2) behind a node http
// server, and optionally `git daemon` (git://, one per connection as inetd runs it). Plain
// JavaScript without dependencies, so it also runs as `ip netns exec NS node gitHttpServer.mjs ...` (a server
// "outside" the cluster). Prints `ready <httpPort> <daemonPort|0>` once both listen; each
// request it serves is reported as `request <method> <path>` so tests see what a fetch asked.
// Usage: node gitHttpServer.mjs <projectRoot> <host> <port|0> [daemon]
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { createServer } from 'node:http';
import { createServer as createTcp } from 'node:net';

const [root, host, portArg, daemon] = process.argv.slice(2);

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  process.stdout.write(`request ${req.method} ${url.pathname}\n`);
  // /redirect/<host:port>/<repo path>: a repository that sends the client to another server.
  const redirect = /^\/redirect\/([^/]+)(\/.*)$/.exec(url.pathname);
  if (redirect) {
    res.writeHead(302, { location: `http://${redirect[1]}${redirect[2]}${url.search}` }).end();
    return;
  }
  const cgi = spawn('git', ['http-backend'], {
    env: {
      PATH: process.env.PATH, GIT_PROJECT_ROOT: root, GIT_HTTP_EXPORT_ALL: '1', REQUEST_METHOD: req.method,
      PATH_INFO: decodeURIComponent(url.pathname), QUERY_STRING: url.search.replace(/^\?/, ''),
      CONTENT_TYPE: req.headers['content-type'] ?? '', REMOTE_ADDR: req.socket.remoteAddress ?? '',
      GIT_PROTOCOL: req.headers['git-protocol'] ?? '', HTTP_CONTENT_ENCODING: req.headers['content-encoding'] ?? '',
      ...(req.headers['content-length'] ? { CONTENT_LENGTH: req.headers['content-length'] } : {}),
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  req.pipe(cgi.stdin);
  let head = Buffer.alloc(0);
  let started = false;
  cgi.stdout.on('data', (chunk) => {
    if (started) { res.write(chunk); return; }
    head = Buffer.concat([head, chunk]);
    let end = head.indexOf('\r\n\r\n');
    let sep = 4;
    if (end < 0) { end = head.indexOf('\n\n'); sep = 2; }
    if (end < 0) return;
    let status = 200;
    const headers = {};
    for (const line of head.subarray(0, end).toString('latin1').split(/\r?\n/)) {
      const i = line.indexOf(':');
      if (i < 0) continue;
      const name = line.slice(0, i).trim();
      const value = line.slice(i + 1).trim();
      if (name.toLowerCase() === 'status') status = Number(value.split(' ')[0]);
      else headers[name] = value;
    }
    res.writeHead(status, headers);
    started = true;
    if (head.length > end + sep) res.write(head.subarray(end + sep));
  });
  cgi.stdout.on('end', () => res.end());
  cgi.on('error', () => { if (!res.headersSent) res.writeHead(500); res.end(); });
});

server.listen(Number(portArg), host, () => {
  const httpPort = server.address().port;
  if (!daemon) { process.stdout.write(`ready ${httpPort} 0\n`); return; }
  startDaemon(httpPort);
});

/**
 * git:// served as inetd would: this process listens (on a port the kernel picks, so no other
 * process can take it first) and runs `git-daemon --inetd` for each connection, the socket as
 * its stdin and stdout.
 */
function startDaemon(httpPort) {
  const gitDaemon = join(execFileSync('git', ['--exec-path'], { encoding: 'utf8' }).trim(), 'git-daemon');
  const daemons = new Set();
  process.on('exit', () => { for (const d of daemons) d.kill('SIGKILL'); });
  const listener = createTcp((socket) => {
    const d = spawn(gitDaemon, ['--inetd', '--log-destination=none', '--export-all', `--base-path=${root}`, root], { stdio: [socket, socket, 'inherit'] });
    daemons.add(d);
    d.once('exit', () => { daemons.delete(d); socket.destroy(); });
  });
  listener.listen(0, host, () => process.stdout.write(`ready ${httpPort} ${listener.address().port}\n`));
}
process.on('SIGTERM', () => process.exit(0));
