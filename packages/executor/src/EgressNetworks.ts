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
  /** Whose step it is: a network a step has run in goes again only to a step of the same tenant. */
  tenant?: string;
  /**
   * The step holds CAP_NET_ADMIN (security=insecure) and may have changed its namespace
   * (addresses, routes, its own nftables): its network is torn down after it, never used again.
   */
  mayReconfigure?: boolean;
}

export interface StepNetwork {
  /** Namespace for runc to join. */
  netnsPath: string;
  /** The step's own address. */
  address: string;
  /** Tears the network down (the step's processes must be gone); calling it again waits for the same release. */
  release(): Promise<void>;
}

/** What a step's table is made of: its tenant's lists and its nameservers. */
interface FirewallInputs {
  nameservers: string[];
  rules: TenantEgressRules;
}

/** A slot's names and addresses, its namespace and veth made; release() removes them and its table. */
interface Slot {
  ns: string;
  link: string;
  table: string;
  gateway: string;
  address: string;
  /** The ruleset its table holds now; undefined while it has none. */
  tableText?: string;
  /**
   * `nextFirewall`: a step's release, after which the next step's network is made ahead with
   * the released step's firewall (the next step is most often of the same build).
   */
  release(nextFirewall?: FirewallInputs): Promise<void>;
}

const netnsDir = '/run/netns';
const maxAttempts = 64;
/** Networks kept for their tenant's next step (see keep): one per tenant, this many at most. */
const maxKept = 4;

export class EgressNetworks {
  private readonly pool: Cidr;
  /** What steps may reach; the worker's own fetches for builds (ADD <url>) ask the same rules. */
  readonly rules: EgressRules;
  private forwardingOn = false;
  /** Slots this executor's steps and its spare hold, from creation until their release has finished. */
  private readonly held = new Set<number>();
  /** Whether the conntrack command is here; checked before the first slot is made. */
  private conntrackFound: Promise<void> | undefined;
  /** Releases still running: a step's run returns before its network is torn down. */
  private readonly releasing = new Set<Promise<void>>();
  /** The next step's network, being made or made (see prepareSpare). */
  private spare: Promise<Slot | undefined> | undefined;
  /** Networks a tenant's last step ran in, kept for its next step (see keep); oldest first. */
  private readonly kept = new Map<string, Slot>();
  private readonly slots: number;

  /** `owner` prefixes every namespace and table name, so cleanupStale() touches only ours. */
  constructor(readonly owner: string, policy: EgressPolicy) {
    if (!/^[a-z0-9]{1,20}$/.test(owner)) throw new Error(`invalid egress owner tag "${owner}"`);
    const pool = parseCidr(policy.pool);
    if (!pool || pool.prefix > 30) throw new Error(`egress pool "${policy.pool.slice(0, 60)}" must be an IPv4 range of /30 or larger, e.g. 10.89.0.0/16`);
    this.pool = pool;
    this.slots = 2 ** (32 - pool.prefix) / 4;
    // The pool is protected too: the other steps live there.
    this.rules = new EgressRules({ ...policy, protect: [...policy.protect, formatCidr(pool)] });
  }

  async create(req: StepNetworkRequest): Promise<StepNetwork> {
    const rules = this.rules.forTenant({ deny: req.deny, allow: req.allow });
    this.enableForwarding();
    const firewall: FirewallInputs = { nameservers: req.nameservers, rules };
    const step = { tenant: req.tenant ?? '', mayReconfigure: req.mayReconfigure === true };
    const kept = this.kept.get(step.tenant);
    if (kept) {
      this.kept.delete(step.tenant);
      return this.arm(kept, firewall, step, [this.firewall(kept, firewall)]);
    }
    for (let waited = false; ; waited = true) {
      const spare = await this.takeSpare();
      if (spare) return this.arm(spare, firewall, step, [this.firewall(spare, firewall)]);
      // The namespace's side and the host's firewall at once (neither needs the other).
      const slot = await this.claimSlot();
      if (slot) return this.arm(slot, firewall, step, [this.configureInside(slot), this.firewall(slot, firewall)]);
      // Every slot tried was held by a step whose network is still being torn down: once those
      // are gone, the same slots are free (or one of them is the spare made from it).
      if (waited || this.releasing.size === 0) {
        throw new Error(`no free network slot for the RUN step in ${formatCidr(this.pool)} (${Math.min(this.slots, maxAttempts)} of its ${this.slots} tried): too many steps on this host; widen worker.egress.pool`);
      }
      await this.released();
    }
  }

  /**
   * Resolves when every step network released so far is gone (namespace, veth and table), the
   * kept ones and the spare too: nothing of this executor's networks is left on the host then.
   */
  async settled(): Promise<void> {
    while (this.spare || this.releasing.size > 0 || this.kept.size > 0) {
      for (const slot of this.kept.values()) void slot.release();
      this.kept.clear();
      await (await this.takeSpare())?.release();
      await this.released();
    }
  }

  /** The namespaces of the networks kept for their tenants' next steps. */
  keptNamespaces(): string[] {
    return [...this.kept.values()].map((slot) => slot.ns);
  }

  /** Once every step network released so far is gone: the namespace of the spare made then, if any. */
  async spareAfterReleases(): Promise<string | undefined> {
    await this.released();
    return (await this.spare)?.ns;
  }

  /** Resolves when every step network released so far is gone. */
  private async released(): Promise<void> {
    while (this.releasing.size > 0) await Promise.all(this.releasing);
  }

  /**
   * The next step's network made ahead, when a step's network is released, with the released
   * step's firewall: a next step of the same tenant and nameservers (most often of the same
   * build) waits for no process at all, another replaces the table in one `nft` transaction
   * before it starts. Nothing runs in a spare's namespace until a step has it, and it has that
   * step's own table by then. One at most, and it never waits for a slot.
   */
  private prepareSpare(firewall: FirewallInputs): void {
    if (this.spare) return;
    const making = (async () => {
      const slot = await this.claimSlot();
      if (!slot) return undefined;
      const made = await Promise.allSettled([this.configureInside(slot), this.firewall(slot, firewall)]);
      if (made.every((r) => r.status === 'fulfilled')) return slot;
      await slot.release();
      return undefined;
    })().catch(() => undefined);
    this.spare = making;
    // None made (every slot held): the next release tries again.
    void making.then((slot) => { if (!slot && this.spare === making) this.spare = undefined; });
  }

  private async takeSpare(): Promise<Slot | undefined> {
    const spare = this.spare;
    this.spare = undefined;
    return spare && await spare;
  }

  /** The step's network once `setup` (the rest of its set-up) has ended; on a failure, released. */
  private async arm(slot: Slot, firewall: FirewallInputs, step: { tenant: string; mayReconfigure: boolean }, setup: Promise<void>[]): Promise<StepNetwork> {
    // Every part has ended before a failure releases the slot, so no table is made after its
    // release deleted it.
    const failed = (await Promise.allSettled(setup)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await slot.release();
      throw failed.reason;
    }
    let released: Promise<void> | undefined;
    // Once only: a kept network may be another step's by the time a second call would come.
    const release = () => released ??= step.mayReconfigure ? slot.release(firewall) : this.keep(slot, step.tenant, firewall);
    return { netnsPath: `${netnsDir}/${slot.ns}`, address: slot.address, release };
  }

  /**
   * Keeps a released network for its tenant's next step, as it is: no process at all, where
   * tearing it down and making the next one take five. Safe because the step's processes are
   * gone and, without CAP_NET_ADMIN (a sandboxed step), none could change the namespace: its
   * addresses, routes and firewall, in the namespace and on the host, are as they were made,
   * and /proc/sys is read-only to it. What the step's connections leave (late replies its
   * address still receives, conntrack entries) reaches only the same tenant. BuildKit keeps
   * its namespaces in a pool the same way (cniprovider), for any build. One per tenant; beyond
   * maxKept tenants, the oldest is torn down.
   */
  private keep(slot: Slot, tenant: string, firewall: FirewallInputs): Promise<void> {
    if (this.kept.has(tenant)) return slot.release(firewall);
    this.kept.set(tenant, slot);
    for (const [oldest, old] of this.kept) {
      if (this.kept.size <= maxKept) break;
      this.kept.delete(oldest);
      void old.release();
    }
    return Promise.resolve();
  }

  /** A free slot with its namespace and veth made (the host's side); undefined when none is free. */
  private async claimSlot(): Promise<Slot | undefined> {
    // A release cannot clear its address's connections without it (see release below).
    await (this.conntrackFound ??= cmd('conntrack', ['--version']).then((found) => {
      if (found.code !== 0) throw setupError('conntrack --version', found.stderr);
    }));
    const start = randomInt(this.slots);
    for (let i = 0; i < Math.min(this.slots, maxAttempts); i++) {
      const slot = (start + i) % this.slots;
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
      const release = (nextFirewall?: FirewallInputs) => {
        // The spare is made while this slot is torn down, in another slot; or, when every other
        // slot is held, in this one once it is free.
        if (nextFirewall && !released) this.prepareSpare(nextFirewall);
        released ??= (async () => {
          // The link first: whatever still runs in the namespace is cut off before its rules go.
          await cmd('ip', ['-force', '-batch', '-'], `link del ${link}\nnetns del ${ns}\n`);
          // The step's connections outlive it in the host's conntrack table (a closed one for
          // minutes, one cut off with the link for days): a late reply would be let in as
          // established and routed to the next step given this address, another tenant's, which
          // can read it (NET_RAW). They go before the address can be handed out again.
          await cmd('conntrack', ['-D', '-s', address]);
          await cmd('nft', ['delete', 'table', 'inet', table]);
        })().finally(() => {
          this.held.delete(slot);
          this.releasing.delete(released!);
          // Before `released` resolves: a step waiting for a slot finds the spare made in it.
          if (nextFirewall) this.prepareSpare(nextFirewall);
        });
        this.releasing.add(released);
        return released;
      };
      return { ns, link, table, gateway, address, release };
    }
    return undefined;
  }

  /** The namespace's side: its addresses and the default route through the host's veth end. */
  private configureInside(slot: Slot): Promise<void> {
    return must('ip', ['-n', slot.ns, '-batch', '-'], `link set lo up\naddress add ${slot.address}/30 dev eth0\nlink set eth0 up\nroute add default via ${slot.gateway}\n`);
  }

  /**
   * Gives the slot's table exactly `firewall`'s ruleset (what its tenant may reach, see ruleset):
   * nothing to do when it holds that text already; a table it holds otherwise is deleted and
   * made anew in the same transaction (`add` first, so the delete never fails).
   */
  private async firewall(slot: Slot, firewall: FirewallInputs): Promise<void> {
    const text = this.ruleset(slot.table, slot.link, slot.address, firewall.nameservers, firewall.rules);
    if (slot.tableText === text) return;
    const replace = slot.tableText === undefined ? '' : `add table inet ${slot.table}\ndelete table inet ${slot.table}\n`;
    slot.tableText = undefined;
    await must('nft', ['-f', '-'], replace + text);
    slot.tableText = text;
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
      // Only the step's own address leaves (CAP_NET_RAW crafts any other): no reflection attacks
      // on third parties from the worker's network, no replies steered to another step.
      `    ${from} ip saddr != ${address} drop`,
      // A destination the host rewrote (a port Docker's -p, kube-proxy or a hostPort publishes
      // on a host address) is no longer the one the step named, and the lists below would judge
      // the service behind it: a step never leaves through DNAT.
      `    ${from} ct status dnat reject with icmp type admin-prohibited`,
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
      `    ${from} ip saddr != ${address} drop`,
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

/** Removes the step namespaces (their veths go with them), tables and their addresses' conntrack entries of an owner. */
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
  for (const t of tables) {
    // The table names its step's address (its masquerade rule): that address's connections go
    // too, as a release clears them.
    const address = /\bip saddr (\d+\.\d+\.\d+\.\d+) oifname != /.exec((await cmd('nft', ['list', 'table', 'inet', t])).stdout)?.[1];
    if (address) await cmd('conntrack', ['-D', '-s', address]);
    await cmd('nft', ['delete', 'table', 'inet', t]);
  }
  return { namespaces, tables };
}

function setupError(what: string, stderr: string): Error {
  return new Error(`cannot set up the RUN step's network: ${what}: ${stderr.trim().split('\n')[0]?.slice(0, 300)}: the worker needs root, iproute2, nftables and conntrack (or worker.egress.enabled=false)`);
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
