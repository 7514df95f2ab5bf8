// "The outside world" for egress tests on machines without internet: a network namespace of
// its own, joined to this host by a veth pair, holding the addresses a build would reach out
// there (a web server, a DNS server answering for a test domain, a service the worker is told
// to deny, and a cloud-metadata address), with host routes sending traffic for them into it.
// Also a listener on the host side of that veth: a host address that is not loopback, which
// a RUN step must not reach (it stands for every service on the worker host).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** A connection to one of the stalling servers, as the outside server reports it. */
export interface OutsideConnection {
  /** Settles when the connection is closed (by either side). */
  closed: Promise<void>;
}

export interface Outside {
  /** The namespace's name. */
  ns: string;
  /** HTTP server at port 80: answers "hello from outside <nonce>"; `/redirect?to=<url>`
   *  answers 302 to that URL. Also on this address: port 81 accepts and never answers, port
   *  82 answers 200 with a huge length and then a byte every 100 ms (see `connections`). */
  web: string;
  /** Connections accepted so far on port 81 or 82 of `web`, oldest first. */
  connections(port: 81 | 82): OutsideConnection[];
  /** Resolves every name under `domain` to `web`. */
  dns: string;
  domain: string;
  /** A listening service the tests put on a deny list: answers "DENIED-SERVICE <nonce>". */
  denied: string;
  /** Two addresses of a private range (172.31.255.0/24) routed into the namespace, as a
   *  frontend or a LAN host would be; port 80 answers "OUTSIDE <nonce>" on both. The tests put
   *  `allowed` in worker.egress.allow; `denied` is denied by worker.egress.denyPrivate alone. */
  private: { denied: string; allowed: string };
  /** A metadata address routed into the namespace: answers "METADATA-SERVICE <nonce>". */
  metadata: string;
  /** A listener on a worker host address (not loopback): answers "WORKER-HOST <nonce>". */
  host: { address: string; port: number };
  nonce: string;
  stop(): Promise<void>;
}

const serverScript = fileURLToPath(new URL('./outsideServer.mjs', import.meta.url));

/** Namespaces of test processes that died without stopping theirs (their veth and routes go
 *  with them). */
function reclaimDeadOutsides(): void {
  let names: string[] = [];
  try { names = readdirSync('/run/netns'); } catch { return; }
  for (const ns of names) {
    const pid = /^byout-(\d+)-\d+$/.exec(ns)?.[1];
    if (!pid || existsSync(`/proc/${pid}`)) continue;
    for (const p of spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean)) {
      try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ }
    }
    ip(['netns', 'del', ns]);
  }
}

function ip(args: string[]): { ok: boolean; stderr: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, stderr: r.stderr };
}

function must(args: string[]): void {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(' ')}: ${r.stderr.trim()}`);
}

/**
 * Several instances may run at once (test files in parallel): each takes its own transit /30 in
 * 198.18.0.0/16, its own /28 of 203.0.113.0/24 (TEST-NET-3) and of 172.31.255.0/24 (a private
 * range), retrying on a taken one. The
 * metadata address is the one asked for unless another instance routes it; then any link-local one.
 */
export async function startOutside(options: { metadata?: string } = {}): Promise<Outside> {
  reclaimDeadOutsides();
  const nonce = randomBytes(6).toString('hex');
  let metadata = options.metadata ?? '169.254.169.254';
  for (let attempt = 0; attempt < 20; attempt++) {
    const k = randomInt(16);
    const t = randomInt(1, 16384);
    const ns = `byout-${process.pid}-${k}`;
    const link = `byo${t}`;
    const hostAddress = `198.18.${t >> 6}.${(t & 63) * 4 + 1}`;
    const nsAddress = `198.18.${t >> 6}.${(t & 63) * 4 + 2}`;
    const base = `203.0.113.${k * 16}`;
    const at = (n: number) => `203.0.113.${k * 16 + n}`;
    const privateBase = `172.31.255.${k * 16}`;
    const privateAt = (n: number) => `172.31.255.${k * 16 + n}`;
    if (!ip(['netns', 'add', ns]).ok) continue;
    if (!ip(['link', 'add', link, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]).ok) { ip(['netns', 'del', ns]); continue; }
    const routes: string[][] = [];
    let server: ChildProcess | undefined;
    let hostServer: Server | undefined;
    let stopped = false;
    // Synchronous, so the 'exit' hook can run it too: a test file stopped before its after()
    // (interrupted, or stopped by scripts/test-guard.mjs) leaves no server, veth or namespace.
    const stopNow = () => {
      if (stopped) return;
      stopped = true;
      process.off('exit', stopNow);
      server?.kill('SIGKILL');
      // A connection still open to it would keep this process alive after its tests.
      hostServer?.closeAllConnections();
      hostServer?.close();
      for (const r of routes) ip(['route', 'del', ...r]);
      ip(['link', 'del', link]);
      ip(['netns', 'del', ns]);
    };
    process.once('exit', stopNow);
    const stop = async () => stopNow();
    try {
      must(['address', 'add', `${hostAddress}/30`, 'dev', link]);
      must(['link', 'set', link, 'up']);
      for (const a of [['link', 'set', 'lo', 'up'], ['address', 'add', `${nsAddress}/30`, 'dev', 'eth0'], ['link', 'set', 'eth0', 'up'], ['route', 'add', 'default', 'via', hostAddress]]) must(['-n', ns, ...a]);
      for (const a of [at(1), at(2), at(3), privateAt(1), privateAt(2), metadata]) must(['-n', ns, 'address', 'add', `${a}/32`, 'dev', 'lo']);
      for (const r of [[`${base}/28`, 'via', nsAddress], [`${privateBase}/28`, 'via', nsAddress], [`${metadata}/32`, 'via', nsAddress]]) {
        const added = ip(['route', 'add', ...r]);
        if (!added.ok) {
          // Another instance routes this metadata address: any link-local one shows the same.
          if (r[0] === `${metadata}/32`) metadata = `169.254.${randomInt(1, 255)}.${randomInt(1, 255)}`;
          throw Object.assign(new Error(`ip route add ${r.join(' ')}: ${added.stderr.trim()}`), { retry: /exists/i.test(added.stderr) });
        }
        routes.push(r);
      }
      const cfg = { web: at(1), denied: at(2), dns: at(3), metadata, domain: `outside-${nonce}.test`, nonce };
      // `ip netns exec` execs node in place: `server` is the server process itself.
      server = spawn('ip', ['netns', 'exec', ns, process.execPath, serverScript, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
      const proc = server;
      const connections = new Map<string, OutsideConnection & { port: number; close(): void }>();
      await new Promise<void>((ok, fail) => {
        createInterface({ input: proc.stdout! }).on('line', (line) => {
          if (line === 'ready') { ok(); return; }
          const m = /^connection (\d+) (\d+) (open|closed)$/.exec(line);
          if (!m) return;
          if (m[3] === 'open') {
            let close = () => {};
            const closed = new Promise<void>((resolve) => { close = resolve; });
            connections.set(m[2]!, { port: Number(m[1]), closed, close });
          } else {
            connections.get(m[2]!)?.close();
          }
        });
        proc.once('exit', (code, signal) => fail(new Error(`the outside server exited with ${code ?? signal} before it was ready`)));
        proc.once('error', (err) => fail(new Error(`cannot start the outside server with ip netns exec: ${err.message}`)));
      });
      const hs = createServer((_req, res) => res.end(`WORKER-HOST ${nonce}\n`));
      hostServer = hs;
      const port = await new Promise<number>((ok, fail) => {
        hs.once('error', fail);
        hs.listen(0, hostAddress, () => ok((hs.address() as { port: number }).port));
      });
      const connectionsOn = (p: number) => [...connections.values()].filter((c) => c.port === p).map(({ closed }) => ({ closed }));
      return { ns, ...cfg, private: { denied: privateAt(1), allowed: privateAt(2) }, connections: connectionsOn, host: { address: hostAddress, port }, stop };
    } catch (err) {
      await stop();
      if ((err as { retry?: boolean }).retry) continue;
      throw err;
    }
  }
  throw new Error('could not set up the outside network namespace after 20 tries');
}
