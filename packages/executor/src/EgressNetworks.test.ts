// RUN's default network with real runc: egress to an "outside" namespace standing in for the
// internet, DNS from the worker's settings, and nothing of the worker host, denied ranges or
// metadata addresses; none gives only lo; nothing is left behind after a step.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';
import { startOutside, type Outside } from '../../../test/e2e/security/outsideNetwork.js';
import { ExecError, RuncExecutor, type Meta } from './index.js';
import { canUseRunc, makeTestDir, runScript, type TestDir } from './testRootfs.test-util.js';

const hasNft = spawnSync('nft', ['--version']).status === 0;
const skip = !canUseRunc ? 'needs root and runc' : !hasNft ? 'needs nft (nftables)' : false;

function leftovers(owner: string): { namespaces: string[]; tables: string[] } {
  let names: string[] = [];
  try { names = readdirSync('/run/netns'); } catch { /* none */ }
  const tables = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout;
  return {
    namespaces: names.filter((n) => n.startsWith(`${owner}-`)),
    tables: [...tables.matchAll(/^table inet (\S+)$/gm)].map((m) => m[1] as string).filter((t) => t.startsWith(`${owner}_`)),
  };
}

describe('RUN network=default: egress, and nothing of the cluster', { skip }, () => {
  let t: TestDir;
  let outside: Outside;
  let executor: RuncExecutor;

  before(async () => {
    t = await makeTestDir('amd64');
    // A metadata address of its own (ECS's), so this file can run beside the e2e test.
    outside = await startOutside({ metadata: '169.254.170.2' });
    executor = new RuncExecutor({
      stateDir: t.stateDir,
      dns: { nameservers: [outside.dns], search: [], options: ['ndots:0'] },
      egress: { deny: [outside.denied] },
    });
  });
  after(async () => {
    await executor?.cleanupStale().catch(() => undefined);
    await outside?.stop();
    t?.remove();
  });
  afterEach(async () => {
    // A step's network is torn down after its run returns; settled() is that teardown's end.
    await executor.settled();
    assert.deepEqual(leftovers(executor.egress!.owner), { namespaces: [], tables: [] }, 'a step left its network behind');
  });

  const run = (script: string, extra: Partial<Meta> = {}) => runScript(executor, t.rootfs, script, { network: 'default', ...extra });
  const fetch = (url: string, tag: string) => `(timeout 10 wget -q -O - ${url} && echo REACHED-${tag}) || echo BLOCKED-${tag}`;

  it('reaches the outside by name through the configured resolver', async () => {
    const out = await run(`cat /etc/resolv.conf; cat /proc/net/dev; ${fetch(`http://files.${outside.domain}/hello.txt`, 'web')}`);
    assert.match(out, new RegExp(`^nameserver ${outside.dns.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(out, new RegExp(`hello from outside ${outside.nonce}`));
    assert.match(out, /REACHED-web/);
    const ifaces = [...out.matchAll(/^\s*([a-z0-9]+):\s+\d/gm)].map((m) => m[1]).sort();
    assert.deepEqual(ifaces, ['eth0', 'lo']);
  });

  it('cannot reach the worker host, its gateway, a denied service or a metadata address', async () => {
    const out = await run([
      fetch(`http://${outside.host.address}:${outside.host.port}/`, 'host'),
      `gw=$(ip route | awk '/default/ {print $3}'); ${fetch(`http://$gw:${outside.host.port}/`, 'gateway')}`,
      fetch(`http://${outside.denied}/`, 'denied'),
      fetch(`http://${outside.metadata}/`, 'metadata'),
      fetch(`http://${outside.web}/`, 'web'),
    ].join('; '));
    for (const tag of ['host', 'gateway', 'denied', 'metadata']) assert.match(out, new RegExp(`BLOCKED-${tag}`), out);
    assert.doesNotMatch(out, /WORKER-HOST|DENIED-SERVICE|METADATA-SERVICE/);
    // The same step reaches the outside: what failed was the firewall, not the route.
    assert.match(out, /REACHED-web/);
    // The host side really listens: from the host itself it answers.
    const direct = await (await fetch_(`http://${outside.host.address}:${outside.host.port}/`)).text();
    assert.equal(direct, `WORKER-HOST ${outside.nonce}\n`);
  });

  it('cannot reach a service through a port the host forwards from its own addresses (DNAT, as docker -p publishes one)', async () => {
    // What Docker's -p adds: a host port forwarded to a service elsewhere, here the outside web server.
    const port = 40000 + (process.pid % 20000);
    const table = `dnat_published_${process.pid}`;
    const nft = (text: string) => assert.equal(spawnSync('nft', ['-f', '-'], { input: text }).status, 0, text);
    nft(`table ip ${table} {\n chain pre {\n  type nat hook prerouting priority dstnat; policy accept;\n  fib daddr type local tcp dport ${port} dnat to ${outside.web}:80\n }\n}\n`);
    try {
      const out = await run([
        fetch(`http://${outside.host.address}:${port}/`, 'host'),
        `gw=$(ip route | awk '/default/ {print $3}'); ${fetch(`http://$gw:${port}/`, 'gateway')}`,
        fetch(`http://${outside.web}/`, 'web'),
      ].join('; '));
      assert.match(out, /BLOCKED-host/, out);
      assert.match(out, /BLOCKED-gateway/, out);
      assert.match(out, /REACHED-web/, out);
    } finally {
      nft(`delete table ip ${table}\n`);
    }
  });

  it('a step sends from its own address only: another source (what CAP_NET_RAW can craft) is dropped', async () => {
    // CAP_NET_ADMIN (insecure) is the simplest way to send from another address; a sandboxed step
    // does it with a raw socket. The /30's network address routes back to the step, so a packet
    // the firewall let through would be answered.
    const out = await run([
      'own=$(ip -4 addr show eth0 | awk \'/inet / {split($2, a, "/"); print a[1]}\')',
      'spoof=$(echo $own | awk -F. \'{print $1"."$2"."$3"."$4-2}\')',
      'gw=$(ip route | awk \'/default/ {print $3}\')',
      'echo SPOOF=$spoof',
      'ip addr add $spoof/32 dev eth0 && ip route replace default via $gw src $spoof && ip route get ' + outside.web,
      fetch(`http://${outside.web}/`, 'spoofed'),
      'ip route replace default via $gw src $own',
      fetch(`http://${outside.web}/`, 'own'),
    ].join('; '), { security: 'insecure' });
    const spoof = /^SPOOF=(\S+)$/m.exec(out)?.[1] ?? '';
    assert.match(out, new RegExp(`src ${spoof.replace(/\./g, '\\.')}\\b`), `the step's packets left from ${spoof}: ${out}`);
    assert.match(out, /BLOCKED-spoofed/, out);
    assert.match(out, /REACHED-own/, out);
  });

  it("adds the tenant's lists: a tenant deny blocks, a tenant allow re-opens a worker deny", async () => {
    const denied = await run(fetch(`http://${outside.web}/`, 'web'), { egress: { deny: [`${outside.web}/32`] } });
    assert.match(denied, /BLOCKED-web/);
    const allowed = await run(fetch(`http://${outside.denied}/`, 'denied'), { egress: { allow: [outside.denied] } });
    assert.match(allowed, /REACHED-denied/);
    await assert.rejects(run('true', { egress: { deny: ['not-an-address'] } }), /tenant egress deny list: "not-an-address" is not an IPv4 address/);
  });

  it('the attacker\'s neighbour: a torn-down step leaves no connection of its address in conntrack, so no late reply reaches the next step given it', async () => {
    const out = await run(`ip -4 addr show eth0; printf 'GET / HTTP/1.0\\r\\n\\r\\n' | timeout 10 nc ${outside.web} 80 | head -1`, { security: 'insecure' });
    assert.match(out, /^HTTP\/1\.[01] 200/m, 'the step reached the outside');
    const address = /inet (\S+)\/30/.exec(out)?.[1];
    assert.ok(address, out);
    await executor.settled();
    // This run's outside (an address of its own) picks out this step's connection among any other run's.
    const listed = spawnSync('conntrack', ['-L', '-s', address, '-d', outside.web], { encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    assert.equal(listed.stdout, '', 'the closed connection (TIME_WAIT for two minutes) was still tracked for the address');
  });

  it('the next step gets the network made ahead when the last one was released, with its own tenant\'s firewall', async () => {
    const owner = executor.egress!.owner;
    const slotOfSpare = async (): Promise<number> => {
      // A step's release makes the spare: a namespace and veth with the released step's table, nothing running.
      const spare = await executor.egress!.spareAfterReleases();
      assert.ok(spare, 'a spare was made');
      assert.deepEqual(leftovers(owner), { namespaces: [spare], tables: [spare.replace(`${owner}-`, `${owner}_`)] });
      assert.equal(spawnSync('ip', ['netns', 'pids', spare], { encoding: 'utf8' }).stdout, '', 'nothing runs in a spare');
      return Number(spare.slice(owner.length + 1));
    };
    // 10.89.0.0/16 (the default pool): slot n's step address is 10.89.x.y with x*256+y = 4n+2.
    const addressOf = (slot: number) => `10.89.${(slot * 4 + 2) >> 8}.${(slot * 4 + 2) & 255}`.replace(/\./g, '\\.');
    // A step that could have changed its namespace (CAP_NET_ADMIN): its network is torn down and the spare made.
    await run('true', { security: 'insecure' });
    // The same tenant's next step finds its table already there.
    const sameSlot = await slotOfSpare();
    const same = await run(['ip -4 addr show eth0', fetch(`http://${outside.web}/`, 'web'), fetch(`http://${outside.host.address}:${outside.host.port}/`, 'host'), fetch(`http://${outside.denied}/`, 'denied')].join('; '));
    assert.match(same, new RegExp(`inet ${addressOf(sameSlot)}/30`), `the step ran in the spare (slot ${sameSlot})`);
    assert.match(same, /REACHED-web/);
    assert.match(same, /BLOCKED-host/);
    assert.match(same, /BLOCKED-denied/);
    await run('true', { security: 'insecure' });
    // Another tenant's step on a spare made with the last tenant's table gets its own.
    const slot = await slotOfSpare();
    const out = await run([
      'ip -4 addr show eth0',
      fetch(`http://${outside.web}/`, 'web'),
      fetch(`http://${outside.host.address}:${outside.host.port}/`, 'host'),
      fetch(`http://${outside.denied}/`, 'denied'),
    ].join('; '), { tenant: 'other', egress: { deny: [`${outside.web}/32`], allow: [outside.denied] } });
    assert.match(out, new RegExp(`inet ${addressOf(slot)}/30`), `the step ran in the spare (slot ${slot})`);
    assert.match(out, /BLOCKED-web/, 'the tenant\'s deny applies on a spare');
    assert.match(out, /BLOCKED-host/);
    assert.match(out, /REACHED-denied/, 'the tenant\'s allow applies on a spare');
  });

  it("a tenant's next step runs in the network its last step left; another tenant's step never does", async () => {
    const egress = executor.egress!;
    const address = /inet (\S+)\/30/;
    const probes = (tag: string) => ['ip -4 addr show eth0', fetch(`http://${outside.web}/`, `web-${tag}`), fetch(`http://${outside.host.address}:${outside.host.port}/`, `host-${tag}`), fetch(`http://${outside.denied}/`, `denied-${tag}`)].join('; ');
    const first = await run(probes('1'), { tenant: 'alice' });
    const [kept] = egress.keptNamespaces();
    assert.ok(kept && egress.keptNamespaces().length === 1, 'the step\'s network was kept');
    assert.equal(spawnSync('ip', ['netns', 'pids', kept], { encoding: 'utf8' }).stdout, '', 'nothing runs in a kept network');
    const other = await run(probes('bob'), { tenant: 'bob', egress: { deny: [`${outside.web}/32`] } });
    assert.notEqual(address.exec(other)?.[1], address.exec(first)?.[1], 'another tenant\'s step got a network of its own');
    assert.match(other, /BLOCKED-web-bob/, 'with its own firewall');
    assert.deepEqual(new Set(egress.keptNamespaces()).size, 2, 'each tenant has its network kept');
    const again = await run(probes('2'), { tenant: 'alice' });
    assert.equal(address.exec(again)?.[1], address.exec(first)?.[1], 'the tenant\'s next step ran in its kept network');
    for (const out of [first, again]) {
      assert.match(out, /REACHED-web/);
      assert.match(out, /BLOCKED-host/);
      assert.match(out, /BLOCKED-denied/);
    }
    // A step with CAP_NET_ADMIN takes the kept network too, but nobody gets it after that step.
    const admin = await run('ip -4 addr show eth0', { tenant: 'alice', security: 'insecure' });
    assert.equal(address.exec(admin)?.[1], address.exec(first)?.[1]);
    const after = await run('ip -4 addr show eth0', { tenant: 'alice' });
    assert.notEqual(address.exec(after)?.[1], address.exec(first)?.[1], 'a network a step could have changed is not used again');
  });

  it('network=none has only lo and cannot reach the outside', async () => {
    const out = await run(`cat /proc/net/dev; ${fetch(`http://${outside.web}/`, 'web')}`, { network: 'none' });
    const ifaces = [...out.matchAll(/^\s*([a-z0-9]+):\s+\d/gm)].map((m) => m[1]);
    assert.deepEqual(ifaces, ['lo']);
    assert.match(out, /BLOCKED-web/);
  });

  it('takes a free slot when another executor holds one, and says so when none is left', async () => {
    // Another executor's step in slot 0: its interface name is the host-wide lock on the slot.
    assert.equal(spawnSync('ip', ['link', 'add', 'byv0', 'type', 'veth', 'peer', 'name', `byp${process.pid}`]).status, 0, 'byv0 is free');
    try {
      const two = new RuncExecutor({ stateDir: `${t.stateDir}-two`, egress: { pool: '10.88.255.248/29' } });
      assert.match(await runScript(two, t.rootfs, 'ip -4 addr show eth0', { network: 'default' }), /inet 10\.88\.255\.254\/30/);
      const one = new RuncExecutor({ stateDir: `${t.stateDir}-one`, egress: { pool: '10.88.255.248/30' } });
      await assert.rejects(runScript(one, t.rootfs, 'true', { network: 'default' }), /^Error: no free network slot for the RUN step in 10\.88\.255\.248\/30 \(1 of its 1 tried\)/);
      await two.settled();
      assert.deepEqual(leftovers(two.egress!.owner), { namespaces: [], tables: [] });
      assert.deepEqual(leftovers(one.egress!.owner), { namespaces: [], tables: [] });
      assert.equal(spawnSync('ip', ['link', 'show', 'byv0']).status, 0, 'the other executor\'s interface is untouched');
    } finally {
      spawnSync('ip', ['link', 'del', 'byv0']);
    }
  });

  it('a failing step releases its network too', async () => {
    await assert.rejects(run('exit 3'), (e: unknown) => e instanceof ExecError && e.exitCode === 3);
  });

  it('a slot still being released is not taken: the next step waits for it and keeps its own table', async () => {
    // One slot only: the second network can only be made in the slot the first is leaving.
    const single = new RuncExecutor({ stateDir: `${t.stateDir}-single`, egress: { pool: '10.88.255.244/30' } });
    const egress = single.egress!;
    const first = await egress.create({ nameservers: [], mayReconfigure: true });
    const firstGone = first.release();
    const second = await egress.create({ nameservers: [] });
    await firstGone;
    // Had the first release run after the second step's set-up, it would have deleted the
    // second step's table (same slot, same name) and left that step without its firewall.
    assert.deepEqual(leftovers(egress.owner), { namespaces: [`${egress.owner}-0`], tables: [`${egress.owner}_0`] });
    assert.equal(second.address, '10.88.255.246');
    await second.release();
    await single.settled();
    assert.deepEqual(leftovers(egress.owner), { namespaces: [], tables: [] });
  });

  it('a step that starts while the last one is being torn down still has its firewall', async () => {
    const single = new RuncExecutor({ stateDir: `${t.stateDir}-single2`, dns: { nameservers: [outside.dns], search: [], options: ['ndots:0'] }, egress: { pool: '10.88.255.240/30' } });
    await runScript(single, t.rootfs, 'true', { network: 'default', security: 'insecure' });
    // Not settled: the first step's release may still run.
    const out = await runScript(single, t.rootfs, `${fetch(`http://${outside.host.address}:${outside.host.port}/`, 'host')}; ${fetch(`http://${outside.web}/`, 'web')}`, { network: 'default' });
    assert.match(out, /BLOCKED-host/);
    assert.match(out, /REACHED-web/);
    await single.settled();
    assert.deepEqual(leftovers(single.egress!.owner), { namespaces: [], tables: [] });
  });
});

function fetch_(url: string): Promise<Response> {
  return fetch(url);
}
