// Runs inside the test's "outside" network namespace (see gate.ts): an HTTP server whose
// `GET /gate/<name>` is answered only once the test opens gate <name>, so a RUN step that
// fetches it is held inside its RUN for exactly as long as the test wants. Each arrival is
// reported on stdout (`arrived <name> <n>`); the test opens a gate with `open <name>` on stdin.
// Plain JavaScript without dependencies: it is started with `ip netns exec NS node <file>`.
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';

const [address, port] = process.argv.slice(2);
/** Per gate: how many arrived, whether it is open, and the requests held until it opens. */
const gates = new Map();
const gate = (name) => {
  if (!gates.has(name)) gates.set(name, { arrivals: 0, open: false, held: [] });
  return gates.get(name);
};

const server = createServer((req, res) => {
  const name = /^\/gate\/([\w.-]+)$/.exec(req.url ?? '')?.[1];
  if (!name) { res.writeHead(404).end('unknown gate\n'); return; }
  const g = gate(name);
  g.arrivals++;
  process.stdout.write(`arrived ${name} ${g.arrivals}\n`);
  if (g.open) { res.end(`passed ${name}\n`); return; }
  g.held.push(res);
  res.on('close', () => { g.held = g.held.filter((r) => r !== res); });
});

createInterface({ input: process.stdin }).on('line', (line) => {
  const name = /^open ([\w.-]+)$/.exec(line)?.[1];
  if (!name) return;
  const g = gate(name);
  g.open = true;
  for (const res of g.held.splice(0)) res.end(`passed ${name}\n`);
});
// The test process is gone: nothing will open the gates, and nobody will stop this server.
process.stdin.on('end', () => process.exit(0));

server.listen(Number(port), address, () => process.stdout.write('ready\n'));
