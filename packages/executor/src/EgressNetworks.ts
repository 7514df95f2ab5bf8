// The default network of a RUN step, as BuildKit gives it: outbound DNS, TCP and UDP. Each step
// gets its own network namespace joined to the worker host by a veth pair (a /30 from a pool),
// with NAT out of the host and one nftables table of its own that rejects what a build must not
// reach: the host itself, the cluster's services, link-local and cloud metadata addresses, the
// other steps, and the ranges the operator lists.
//
// Why veth + nftables rather than slirp4netns or passt: a user-mode stack opens the step's
// connections as ordinary sockets of a host process, so the worker host's own services (a Redis
// or registry bound to 0.0.0.0, the worker's /metrics) and anything the host can route to are
// plain local traffic there; filtering that would still need host firewall rules matched by
// cgroup or uid. With a veth, every packet of the step enters the host through one interface
// that the table matches on, in the kernel's forward and input hooks, at kernel speed; deleting
// the table and the namespace removes every trace, and a worker killed mid-step leaves only
// names that start with its owner tag, which it reclaims on start-up. The cost: the worker needs
// CAP_NET_ADMIN, the nft and ip tools, and sets net.ipv4.ip_forward=1 (as Docker does).
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { EgressRules, type EgressRuleLists, type TenantEgressRules } from './egressRules.js';
import { formatCidr, formatIPv4, parseCidr, type Cidr } from './ipv4.js';

export interface EgressPolicy extends EgressRuleLists {
  /** Pool of addresses cut into one /30 per running step; must not overlap real destinations. */
  pool: string;
}

/** What one step adds: the tenant's lists and the nameservers its resolv.conf names. */
export interface StepNetworkRequest {
  nameservers: string[];
  deny?: string[];
  allow?: string[];
}

export interface StepNetwork {
  /** Namespace for runc to join. */
  netnsPath: string;
  /** The step's own address. */
  address: string;
  /** Tears the network down (the step's processes must be gone); calling it again waits for the same release. */
  release(): Promise<void>;
}

const netnsDir = '/run/netns';
const maxAttempts = 64;

export class EgressNetworks {
  private readonly pool: Cidr;
  /** What steps may reach; the worker's own fetches for builds (ADD <url>) ask the same rules. */
  readonly rules: EgressRules;
  private forwardingOn = false;
  /** Slots this executor's steps hold, from creation until their release has finished. */
  private readonly held = new Set<number>();
  /** Releases still running: a step's run returns before its network is torn down. */
  private readonly releasing = new Set<Promise<void>>();

  /** `owner` prefixes every namespace and table name, so cleanupStale() touches only ours. */
  constructor(readonly owner: string, policy: EgressPolicy) {
    if (!/^[a-z0-9]{1,20}$/.test(owner)) throw new Error(`invalid egress owner tag "${owner}"`);
    const pool = parseCidr(policy.pool);
    if (!pool || pool.prefix > 30) throw new Error(`egress pool "${policy.pool.slice(0, 60)}" must be an IPv4 range of /30 or larger, e.g. 10.89.0.0/16`);
    this.pool = pool;
    // The pool is protected too: the other steps live there.
    this.rules = new EgressRules({ ...policy, protect: [...policy.protect, formatCidr(pool)] });
  }

  async create(req: StepNetworkRequest): Promise<StepNetwork> {
    const rules = this.rules.forTenant({ deny: req.deny, allow: req.allow });
    this.enableForwarding();
    const slots = 2 ** (32 - this.pool.prefix) / 4;
    const network = await this.createInFreeSlot(req, rules, slots);
    if (network) return network;
    // Every slot tried was held by a step whose network is still being torn down: once those
    // are gone, the same slots are free.
    if (this.releasing.size > 0) {
      await this.settled();
      const retried = await this.createInFreeSlot(req, rules, slots);
      if (retried) return retried;
    }
    throw new Error(`no free network slot for the RUN step in ${formatCidr(this.pool)} (${Math.min(slots, maxAttempts)} of its ${slots} tried): too many steps on this host; widen worker.egress.pool`);
  }

  /** Resolves when every step network released so far is gone (namespace, veth and table). */
  async settled(): Promise<void> {
    while (this.releasing.size > 0) await Promise.all(this.releasing);
  }

  private async createInFreeSlot(req: StepNetworkRequest, rules: TenantEgressRules, slots: number): Promise<StepNetwork | undefined> {
    const start = randomInt(slots);
    for (let i = 0; i < Math.min(slots, maxAttempts); i++) {
      const slot = (start + i) % slots;
      // Held from here until its release has finished: the table's name is the slot's, so a new
      // step in a slot still being released could have its table deleted by the old release.
      if (this.held.has(slot)) continue;
      this.held.add(slot);
      const ns = `${this.owner}-${slot}`;
      const link = `byv${slot}`;
      const gateway = formatIPv4(this.pool.base + slot * 4 + 1);
      const address = formatIPv4(this.pool.base + slot * 4 + 2);
      // One `ip` for the host side (each process costs milliseconds per step). The interface
      // name is the host-wide lock on the slot: creating it fails if another executor (another
      // worker on this host) holds the slot; the namespace name, if a step of ours does.
      const host = await cmd('ip', ['-batch', '-'], `netns add ${ns}\nlink add ${link} type veth peer name eth0 netns ${ns}\naddress add ${gateway}/30 dev ${link}\nlink set ${link} up\n`);
      if (host.code !== 0) {
        // Undo what this batch made, and only that: at line 2 the link is another's.
        const failedLine = Number(/Command failed -:(\d+)/.exec(host.stderr)?.[1] ?? 0);
        if (failedLine === 2) await cmd('ip', ['netns', 'del', ns]);
        else if (failedLine > 2) await cmd('ip', ['-force', '-batch', '-'], `link del ${link}\nnetns del ${ns}\n`);
        this.held.delete(slot);
        if ((failedLine === 1 || failedLine === 2) && /exists/i.test(host.stderr)) continue;
        throw setupError(`ip netns add ${ns}, link add ${link}`, host.stderr);
      }
      const table = `${this.owner}_${slot}`;
      let released: Promise<void> | undefined;
      const release = () => {
        released ??= (async () => {
          // The link first: whatever still runs in the namespace is cut off before its rules go.
          await cmd('ip', ['-force', '-batch', '-'], `link del ${link}\nnetns del ${ns}\n`);
          await cmd('nft', ['delete', 'table', 'inet', table]);
        })().finally(() => {
          this.held.delete(slot);
          this.releasing.delete(released!);
        });
        this.releasing.add(released);
        return released;
      };
      // The namespace's side and the host's firewall at once (neither needs the other; the step
      // starts only after both). Both have ended before a failure releases the slot, so no table
      // is made after its release deleted it.
      const setup = await Promise.allSettled([
        must('ip', ['-n', ns, '-batch', '-'], `link set lo up\naddress add ${address}/30 dev eth0\nlink set eth0 up\nroute add default via ${gateway}\n`),
        must('nft', ['-f', '-'], this.ruleset(table, link, address, req.nameservers, rules)),
      ]);
      const failed = setup.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failed) return { netnsPath: `${netnsDir}/${ns}`, address, release };
      await release();
      throw failed.reason;
    }
    return undefined;
  }

  /** Removes every namespace (with its veth) and table of this owner: call on start-up, after
   *  the containers that held them are gone. */
  async cleanupStale(): Promise<{ namespaces: string[]; tables: string[] }> {
    await this.settled();
    return reclaimNetworks(this.owner);
  }

  /** The kernel's form of rules.check(), in its order (protect, allow, deny), plus DNS. */
  private ruleset(table: string, link: string, address: string, nameservers: string[], rules: TenantEgressRules): string {
    const dns = nameservers.map((n) => parseCidr(n)).filter((c): c is Cidr => c !== undefined && c.prefix === 32);
    const set = (name: string, entries: Cidr[]) => `  set ${name} { type ipv4_addr; flags interval; auto-merge;${entries.length > 0 ? ` elements = { ${[...new Set(entries.map(formatCidr))].join(', ')} }` : ''} }`;
    const from = `iifname "${link}"`;
    return [
      `table inet ${table} {`,
      set('dns', dns), set('protect', rules.protect), set('deny', rules.deny), set('allow', rules.allow),
      '  chain by_forward {',
      '    type filter hook forward priority filter; policy accept;',
      // IPv6: the step has no IPv6 address; nothing it crafts with CAP_NET_RAW gets through.
      `    ${from} meta nfproto ipv6 drop`,
      `    ${from} ip daddr @dns meta l4proto { tcp, udp } th dport 53 accept`,
      `    ${from} ip daddr @protect reject with icmp type admin-prohibited`,
      `    ${from} ip daddr @allow accept`,
      `    ${from} ip daddr @deny reject with icmp type admin-prohibited`,
      `    ${from} accept`,
      `    oifname "${link}" ct state established,related accept`,
      `    oifname "${link}" drop`,
      '  }',
      // Packets for the host's own addresses (the gateway included) take the input hook.
      '  chain by_input {',
      '    type filter hook input priority filter; policy accept;',
      `    ${from} ip daddr @dns meta l4proto { tcp, udp } th dport 53 accept`,
      `    ${from} meta nfproto ipv4 reject with icmp type admin-prohibited`,
      `    ${from} drop`,
      '  }',
      '  chain by_nat {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      `    ip saddr ${address} oifname != "${link}" masquerade`,
      '  }',
      '}',
      '',
    ].join('\n');
  }

  private enableForwarding(): void {
    if (this.forwardingOn) return;
    const path = '/proc/sys/net/ipv4/ip_forward';
    try {
      if (readFileSync(path, 'utf8').trim() !== '1') writeFileSync(path, '1\n');
    } catch (err) {
      throw new Error(`cannot enable IPv4 forwarding for RUN egress (${(err as Error).message}): run the worker as root, or set worker.egress.enabled=false for RUN steps without network`);
    }
    this.forwardingOn = true;
  }
}

/** Removes the step namespaces (their veths go with them) and tables of an owner. */
export async function reclaimNetworks(owner: string): Promise<{ namespaces: string[]; tables: string[] }> {
  let names: string[] = [];
  try { names = readdirSync(netnsDir); } catch { /* no namespaces at all */ }
  const namespaces = names.filter((n) => n.startsWith(`${owner}-`));
  for (const ns of namespaces) {
    await cmd('ip', ['link', 'del', `byv${ns.slice(owner.length + 1)}`]);
    await cmd('ip', ['netns', 'del', ns]);
  }
  const listed = await cmd('nft', ['list', 'tables']);
  const tables = listed.code !== 0 ? [] : [...listed.stdout.matchAll(/^table inet (\S+)$/gm)].map((m) => m[1] as string).filter((t) => t.startsWith(`${owner}_`));
  for (const t of tables) await cmd('nft', ['delete', 'table', 'inet', t]);
  return { namespaces, tables };
}

function setupError(what: string, stderr: string): Error {
  return new Error(`cannot set up the RUN step's network: ${what}: ${stderr.trim().split('\n')[0]?.slice(0, 300)}: the worker needs root, iproute2 and nftables (or worker.egress.enabled=false)`);
}

async function must(bin: string, args: string[], input: string): Promise<void> {
  const res = await cmd(bin, args, input);
  if (res.code !== 0) throw setupError(`${bin} ${args.join(' ')}`, res.stderr);
}

function cmd(bin: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
    child.on('error', (err) => resolve({ code: -1, stdout, stderr: `${bin}: ${err.message}` }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}
