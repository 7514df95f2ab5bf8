// Runs real containers with runc (needs root) over a copy of testkit's busybox rootfs.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { AbortError, ExecError, ExecTimeoutError, RuncExecutor, type Meta, type Mount, type RunOptions } from './index.js';
import { bundles, canUseRunc, makeTestDir, processesMatching, runcIds, type TestDir } from './testRootfs.test-util.js';

const skip = canUseRunc ? false : 'needs root and runc';

/** A stdout that aborts the step at its first output (the process is surely running then). */
function abortOnOutput(): { controller: AbortController; out: PassThrough } {
  const controller = new AbortController();
  const out = new PassThrough();
  out.on('data', () => controller.abort());
  return { controller, out };
}

describe('RuncExecutor with real runc', { skip }, () => {
  let t: TestDir;
  let executor: RuncExecutor;

  before(async () => {
    t = await makeTestDir('amd64');
    executor = new RuncExecutor({ stateDir: t.stateDir });
  });
  after(async () => {
    if (executor) await executor.cleanupStale().catch(() => undefined);
    t?.remove();
  });
  afterEach(() => {
    // Every case, passing or failing, must leave no container and no bundle behind.
    assert.deepEqual(runcIds(executor.runcRoot), []);
    assert.deepEqual(bundles(t.stateDir), []);
  });

  function meta(script: string, extra: Partial<Meta> = {}): Meta {
    return { args: ['/bin/sh', '-c', script], env: [], cwd: '/', user: '', network: 'none', ...extra };
  }
  async function run(script: string, extra: Partial<Meta> = {}, opts: Partial<RunOptions> = {}): Promise<{ stdout: string; stderr: string; exitCode: number }> {
    const out = collect();
    const err = collect();
    const res = await executor.run({ rootfs: t.rootfs, meta: meta(script, extra), mounts: [], stdout: out.stream, stderr: err.stream, ...opts });
    return { stdout: out.text(), stderr: err.text(), exitCode: res.exitCode };
  }

  it('runs a process and streams stdout and stderr while it runs', async () => {
    // The process waits on stdin for a line the test writes only once "first" has arrived:
    // it can only finish if its output was streamed while it ran.
    const out = new PassThrough();
    const stdin = new PassThrough();
    let stdout = '';
    out.on('data', (c: Buffer) => { stdout += c.toString(); if (stdout.includes('first\n')) stdin.end('go\n'); });
    const err = collect();
    const res = await executor.run({ rootfs: t.rootfs, meta: meta('echo first; echo oops >&2; read reply; echo second $reply'), mounts: [], stdout: out, stderr: err.stream, stdin });
    assert.equal(res.exitCode, 0);
    assert.equal(stdout, 'first\nsecond go\n');
    assert.equal(err.text(), 'oops\n');
  });

  it('feeds stdin', async () => {
    const { stdout } = await run('tr a-z A-Z', {}, { stdin: Readable.from([Buffer.from('hello\n')]) });
    assert.equal(stdout, 'HELLO\n');
  });

  it('throws ExecError with BuildKit wording and the stderr tail on non-zero exit', async () => {
    await assert.rejects(run('false'), (e: unknown) => {
      assert.ok(e instanceof ExecError);
      assert.equal(e.message, 'process "/bin/sh -c false" did not complete successfully: exit code: 1');
      assert.equal(e.exitCode, 1);
      return true;
    });
    await assert.rejects(run('for i in $(seq 1 15); do echo line$i >&2; done; exit 7'), (e: unknown) => {
      assert.ok(e instanceof ExecError);
      assert.equal(e.exitCode, 7);
      assert.deepEqual(e.stderrTail, Array.from({ length: 10 }, (_, i) => `line${i + 6}`));
      return true;
    });
  });

  it('runs several containers at once', async () => {
    // A rootfs per container, as every step has its own snapshot: on one shared rootfs a step
    // could find another's mount stubs, skip making its own, and leave runc's behind.
    const rootfses = [1, 2, 3].map((i) => {
      const rootfs = join(t.dir, `rootfs-${i}`);
      cpSync(t.rootfs, rootfs, { recursive: true, verbatimSymlinks: true });
      return rootfs;
    });
    const results = await Promise.all(rootfses.map((rootfs, i) => run(`echo ${i + 1}; hostname`, { hostname: `h${i + 1}` }, { rootfs })));
    assert.deepEqual(results.map((r) => r.stdout), ['1\nh1\n', '2\nh2\n', '3\nh3\n']);
    for (const rootfs of rootfses) {
      assert.deepEqual(['etc/hosts', 'etc/hostname', 'etc/resolv.conf'].filter((p) => existsSync(join(rootfs, p))), []);
      rmSync(rootfs, { recursive: true, force: true });
    }
  });

  it('reports a missing executable as a start failure', async () => {
    await assert.rejects(executor.run({ rootfs: t.rootfs, meta: { ...meta(''), args: ['/no/such/binary'] }, mounts: [] }),
      (e: unknown) => e instanceof ExecError && /could not be started: .*no such file or directory/.test(e.message));
  });

  it('sets env with the default PATH and creates a missing cwd owned by the user', async () => {
    const { stdout } = await run('echo "$PATH|$FOO|$HOME"; pwd', { env: ['FOO=bar baz'], cwd: '/home/app/project', user: 'app' });
    assert.equal(stdout, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|bar baz|/home/app\n/home/app/project\n');
    const st = statSync(join(t.rootfs, 'home/app/project'));
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1000);
    const given = await run('echo $PATH', { env: ['PATH=/bin'] });
    assert.equal(given.stdout, '/bin\n');
  });

  it('resolves USER by name (with supplementary groups), name:group and uid:gid', async () => {
    // Like BuildKit: supplementary groups are those listing the user plus the primary one
    // (ensureAdditionalGids), for every form; the kernel keeps them sorted.
    assert.equal((await run('id', { user: 'app' })).stdout, 'uid=1000(app) gid=1000(app) groups=50(staff),63(audio),1000(app)\n');
    assert.equal((await run('id', { user: 'app:staff' })).stdout, 'uid=1000(app) gid=50(staff) groups=50(staff)\n');
    assert.equal((await run('id', { user: '1234:5678' })).stdout, 'uid=1234 gid=5678 groups=5678\n');
    assert.equal((await run('id', { user: '1000' })).stdout, 'uid=1000(app) gid=1000(app) groups=50(staff),63(audio),1000(app)\n');
    // The default user is root looked up in passwd, so root's groups apply (BuildKit does the same).
    assert.equal((await run('id', { user: '' })).stdout, 'uid=0(root) gid=0(root) groups=0(root),10(wheel),63(audio)\n');
    assert.equal((await run('id', { user: '0:0' })).stdout, 'uid=0(root) gid=0(root) groups=0(root)\n');
  });

  it('rejects an unknown user before starting anything', async () => {
    await assert.rejects(run('id', { user: 'ghost' }), { message: 'process "/bin/sh -c id" did not complete successfully: unable to find user ghost: no matching entries in passwd file' });
  });

  it('network none has only loopback; host sees the host interfaces', async () => {
    const ifaces = (text: string) => text.split('\n').slice(2).map((l) => l.split(':')[0]?.trim()).filter(Boolean).sort();
    const none = await run('cat /proc/net/dev', { network: 'none' });
    assert.deepEqual(ifaces(none.stdout), ['lo']);
    const host = await run('cat /proc/net/dev', { network: 'host' });
    // Other tests add and remove veths on the host at any moment: steps' (byv*), the outside
    // network's (byo*) and the egress tests' own (byp*).
    const lasting = (names: string[]) => names.filter((n) => !/^by[vop]\d+$/.test(n));
    assert.deepEqual(lasting(ifaces(host.stdout)), lasting(ifaces(readFileSync('/proc/net/dev', 'utf8'))));
    assert.ok(ifaces(host.stdout).length > 1, 'the host should have an interface besides lo');
  });

  it('bind-mounts /etc/hosts, /etc/hostname and /etc/resolv.conf without writing them into the rootfs; runc\'s /proc, /sys, /dev stay, as BuildKit leaves them', async () => {
    // A rootfs without the mount points: runc would otherwise leave empty stubs for the layer.
    for (const p of ['proc', 'sys', 'dev']) rmSync(join(t.rootfs, p), { recursive: true, force: true });
    const { stdout } = await run('hostname; cat /etc/hostname; cat /etc/hosts', { hostname: 'builder1', extraHosts: [{ host: 'cache.local', ip: '127.0.0.9' }] });
    assert.equal(stdout, 'builder1\nbuilder1\n127.0.0.1\tlocalhost builder1\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.9\tcache.local\n');
    for (const p of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf']) {
      assert.equal(existsSync(join(t.rootfs, p)), false, `${p} was left in the rootfs`);
    }
    for (const p of ['proc', 'sys', 'dev']) assert.deepEqual(readdirSync(join(t.rootfs, p)), [], `/${p} stays, empty`);
    const resolv = await run('cat /etc/resolv.conf', { network: 'none' });
    assert.doesNotMatch(resolv.stdout, /nameserver 127\./);
  });

  it('--ulimit replaces the default rlimits; a limit above the worker\'s own is refused', async () => {
    const dflt = await run('ulimit -n');
    assert.notEqual(dflt.stdout.trim(), '1024');
    const { stdout } = await run('ulimit -n; ulimit -Hn; ulimit -Sc', { ulimits: [{ name: 'nofile', soft: 1024, hard: 2048 }, { name: 'core', soft: 0, hard: 0 }] });
    assert.equal(stdout, '1024\n2048\n0\n');
    // Above the worker's own real-time priority (0 on a default host): a step given it could
    // starve the host with SCHED_FIFO without CAP_SYS_NICE.
    const ownRtprio = /^Max realtime priority\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    assert.ok(ownRtprio !== undefined && ownRtprio !== 'unlimited', `this test needs a bounded rtprio hard limit, not ${ownRtprio}`);
    const above = Number(ownRtprio) + 1;
    await assert.rejects(run('true', { ulimits: [{ name: 'rtprio', soft: above, hard: above }] }), new RegExp(`--ulimit rtprio=${above}:${above} is above this worker's own limit \\(${ownRtprio}\\)`));
  });

  it('bind mounts are read-only or writable as asked', async () => {
    const src = join(t.dir, 'share');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'in.txt'), 'from host\n');
    const mounts: Mount[] = [{ type: 'bind', source: src, target: '/mnt/ro', readonly: true }, { type: 'bind', source: src, target: '/mnt/rw', readonly: false }];
    const { stdout } = await run('cat /mnt/ro/in.txt; echo x > /mnt/ro/f 2>/dev/null && echo ro-writable; echo from-container > /mnt/rw/out.txt && echo rw-ok', {}, { mounts });
    assert.equal(stdout, 'from host\nrw-ok\n');
    assert.equal(readFileSync(join(src, 'out.txt'), 'utf8'), 'from-container\n');
    assert.equal(existsSync(join(src, 'f')), false);
    assert.equal(existsSync(join(t.rootfs, 'mnt')), false, 'mount point stubs must be removed');
  });

  it('a mount layout that would take part in runc\'s own setup is refused before anything starts (runc < 1.2.8: CVE-2025-31133 and kin)', async () => {
    const src = join(t.dir, 'cache');
    mkdirSync(src, { recursive: true });
    const cache = (target: string): Mount => ({ type: 'bind', source: src, target, readonly: false, shared: true });
    // A cache mount at /dev: a step of the same tenant could swap /dev/null for a link while runc masks /proc with it.
    await assert.rejects(run('echo started', {}, { mounts: [cache('/dev')] }), /^Error: mount target \/dev is inside \/dev, which the container runtime sets up: choose another target/);
    await assert.rejects(run('echo started', {}, { mounts: [cache('/proc/sys/kernel')] }), /inside \/proc/);
    await assert.rejects(run('echo started', {}, { mounts: [cache('/c'), { type: 'bind', source: src, target: '/c/inner', readonly: true }] }), /inside the cache mount at \/c/);
    assert.equal(existsSync(join(t.rootfs, 'c')), false, 'no mount point was made');
    const { stdout } = await run('grep -c " /dev/shm " /proc/mounts', {}, { mounts: [cache('/dev/shm')] });
    assert.equal(stdout, '2\n', 'a cache at /dev/shm is the build\'s: runc\'s tmpfs, then the cache over it');
  });

  it('tmpfs mounts honour their size', async () => {
    const mounts: Mount[] = [{ type: 'tmpfs', target: '/scratch', sizeBytes: 1024 * 1024 }];
    const { stdout } = await run('grep " /scratch " /proc/mounts | grep -o "size=[0-9]*k"; dd if=/dev/zero of=/scratch/a bs=1024 count=512 2>/dev/null && echo small-ok; dd if=/dev/zero of=/scratch/b bs=1024 count=2048 2>/dev/null || echo big-failed', {}, { mounts });
    assert.equal(stdout, 'size=1024k\nsmall-ok\nbig-failed\n');
  });

  it('a read-only rootfs cannot be written', async () => {
    const { stdout } = await run('touch /root/x 2>/dev/null || echo denied', { readonlyRootfs: true });
    assert.equal(stdout, 'denied\n');
    assert.equal(existsSync(join(t.rootfs, 'root/x')), false);
  });

  it('kills the process on timeout with a clear error', async () => {
    const started = Date.now();
    await assert.rejects(run('echo going; exec sleep 41', { timeoutMs: 1000 }), (e: unknown) => {
      assert.ok(e instanceof ExecTimeoutError);
      assert.match(e.message, /^RUN timed out after 1s/);
      return true;
    });
    assert.ok(Date.now() - started < 30_000, 'did not wait for the sleep to end'); // the sleep lasts 41/42 s
    assert.deepEqual(processesMatching('sleep', '41'), []);
  });

  it('aborts via AbortSignal: kills, cleans up and throws AbortError', async () => {
    const { controller, out } = abortOnOutput();
    const started = Date.now();
    await assert.rejects(
      executor.run({ rootfs: t.rootfs, meta: meta('echo started; exec sleep 42'), mounts: [], stdout: out, signal: controller.signal }),
      (e: unknown) => e instanceof AbortError && e.name === 'AbortError',
    );
    assert.ok(Date.now() - started < 30_000, 'did not wait for the sleep to end'); // the sleep lasts 41/42 s
    assert.deepEqual(processesMatching('sleep', '42'), []);
    await assert.rejects(executor.run({ rootfs: t.rootfs, meta: meta('true'), mounts: [], signal: controller.signal }), AbortError);
  });

  it('an abort while the step is still being set up never starts the process', async () => {
    const controller = new AbortController();
    // run() checks the signal synchronously, then awaits its set-up (bundle, /etc files, spec):
    // aborting right after the call lands in that window, where no abort listener exists yet.
    const running = executor.run({ rootfs: t.rootfs, meta: meta('exec sleep 43'), mounts: [], signal: controller.signal });
    controller.abort();
    await assert.rejects(running, (e: unknown) => e instanceof AbortError);
    assert.deepEqual(processesMatching('sleep', '43'), []);
  });

  it('an abort that runc cannot deliver kills runc and its container: run() returns, nothing is left', async () => {
    // A runc whose `kill` always fails (as while a container is still being created): after
    // its retries the executor kills runc itself and deletes the container; run() still returns
    // at once and leaves no process, container or bundle.
    const wrapper = join(t.dir, 'runc-without-kill');
    writeFileSync(wrapper, '#!/bin/sh\nfor a in "$@"; do [ "$a" = kill ] && exit 1; done\nexec runc "$@"\n', { mode: 0o755 });
    const stubborn = new RuncExecutor({ stateDir: t.stateDir, runcBinary: wrapper });
    const { controller, out } = abortOnOutput();
    const started = Date.now();
    await assert.rejects(
      stubborn.run({ rootfs: t.rootfs, meta: meta('echo started; exec sleep 144'), mounts: [], stdout: out, signal: controller.signal }),
      (e: unknown) => e instanceof AbortError,
    );
    assert.ok(Date.now() - started < 100_000, 'did not wait for the sleep to end'); // it lasts 144 s
    assert.deepEqual(processesMatching('sleep', '144'), []);
  });

  it('refuses a platform the host cannot run', async () => {
    await assert.rejects(run('true', { platform: 'linux/s390x' }), /platform linux\/s390x cannot run on this host/);
  });
});

function collect(): { stream: PassThrough; text(): string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}
