import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathInRoot, pinPathInRoot } from './pathInRoot.js';
import { cleanRel } from './resolveScoped.js';

async function tree(): Promise<{ base: string; root: string; outside: string }> {
  const base = await fsp.mkdtemp(join(tmpdir(), 'pathinroot-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  await fsp.mkdir(join(root, 'a/b'), { recursive: true });
  await fsp.mkdir(outside);
  await fsp.writeFile(join(outside, 'secret'), 'host');
  await fsp.writeFile(join(root, 'own'), 'stage');
  await fsp.symlink('/', join(root, 'slash'));
  await fsp.symlink('../../../../..', join(root, 'a/b/up'));
  await fsp.symlink(outside, join(root, 'abs')); // the host path, read as a path inside the root
  await fsp.symlink('loop2', join(root, 'loop1'));
  await fsp.symlink('loop1', join(root, 'loop2'));
  return { base, root, outside };
}

test('pathInRoot: links to /, "..", and host paths all resolve inside the root', async () => {
  const t = await tree();
  try {
    const real = await fsp.realpath(t.root);
    assert.equal((await pathInRoot(t.root, '/slash', 'x')).path, real);
    assert.equal((await pathInRoot(t.root, 'a/b/up/own', 'x')).path, join(real, 'own'));
    assert.equal((await pathInRoot(t.root, '../../slash/a/../own', 'x')).rel, 'own');
    await assert.rejects(pathInRoot(t.root, `/abs/secret`, 'RUN --mount=type=bind,source=/abs/secret'), /RUN --mount=type=bind,source=\/abs\/secret: \/.*secret does not exist in the mounted source/);
    await assert.rejects(pathInRoot(t.root, '/loop1', 'x'), /too many levels of symbolic links/);
  } finally {
    await fsp.rm(t.base, { recursive: true, force: true });
  }
});

test('pinPathInRoot: the descriptor keeps naming the checked directory after its name becomes a link out', async () => {
  const t = await tree();
  try {
    const pinned = await pinPathInRoot(t.root, 'cache/sub', 'x', { mode: 0o755, owner: { uid: process.getuid!(), gid: process.getgid!() } });
    try {
      await fsp.writeFile(join(t.root, 'cache/sub/mine'), 'x');
      // The attacker swaps the checked directory for a link to the host directory.
      await fsp.rename(join(t.root, 'cache/sub'), join(t.root, 'cache/moved'));
      await fsp.symlink(t.outside, join(t.root, 'cache/sub'));
      assert.deepEqual(await fsp.readdir(pinned.path), ['mine']);
      assert.equal(await fsp.readlink(pinned.path), join(await fsp.realpath(t.root), 'cache/moved'));
    } finally {
      await pinned.close();
    }
    // Asked again, the link is resolved inside the root: `outside` is not there.
    await assert.rejects(pinPathInRoot(t.root, 'cache/sub', 'x'), /does not exist in the mounted source/);
  } finally {
    await fsp.rm(t.base, { recursive: true, force: true });
  }
});

// An attacker's concurrent RUN has the same cache mounted read-write and swaps names while the
// worker (root) makes `source=` inside it with the tenant's mode and owner. Whatever it does,
// nothing outside the cache may be created, chmod'ed or chown'ed.
const victimOwner = process.getuid!() === 0 ? { uid: 4321, gid: 4321 } : { uid: process.getuid!(), gid: process.getgid!() };

async function outsideState(outside: string): Promise<string> {
  const dir = await fsp.lstat(outside);
  const victim = await fsp.lstat(join(outside, 'victim'));
  const show = (st: { mode: number; uid: number; gid: number }) => `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
  return `${show(dir)} [${(await fsp.readdir(outside)).join(',')}] victim ${show(victim)}`;
}

async function withVictim(fn: (t: { root: string; outside: string }) => Promise<void>): Promise<void> {
  const base = await fsp.mkdtemp(join(tmpdir(), 'pathinroot-race-'));
  const root = join(base, 'cache');
  const outside = join(base, 'outside');
  await fsp.mkdir(root);
  await fsp.mkdir(outside, { mode: 0o755 });
  await fsp.writeFile(join(outside, 'victim'), 'host', { mode: 0o600 });
  try {
    const before = await outsideState(outside);
    await fn({ root, outside });
    assert.equal(await outsideState(outside), before);
  } finally {
    await fsp.rm(base, { recursive: true, force: true });
  }
}

/** Runs `script` (plain CommonJS) in a child process until `fn` is done. */
async function withSwapper(script: string, args: string[], fn: () => Promise<void>): Promise<void> {
  const child = spawn(process.execPath, ['-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit');
  try {
    // "ready": its watch or loop is running.
    await Promise.race([once(child.stdout, 'data'), exited.then(() => { throw new Error('the swapper exited before it was ready'); })]);
    await fn();
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

const ATTEMPTS = 200;

test('pinPathInRoot create: links already on the way are followed inside the root; nothing outside is touched', async () => {
  await withVictim(async ({ root, outside }) => {
    await fsp.mkdir(join(root, 'a'));
    await fsp.symlink(outside, join(root, 'a/host')); // a host directory, read as a path inside the root
    await fsp.symlink('../../../../../..', join(root, 'up'));
    await fsp.symlink(join(outside, 'victim'), join(root, 'a/victim'));
    const realRoot = await fsp.realpath(root);
    const hostRel = cleanRel(outside);
    for (const [source, rel] of [['a/host/made', `${hostRel}/made`], ['up/made', 'made'], ['a/victim', `${hostRel}/victim`], ['up/a/victim/sub', `${hostRel}/victim/sub`]]) {
      const pinned = await pinPathInRoot(root, source, 'x', { mode: 0o4777, owner: victimOwner });
      try {
        assert.equal(pinned.rel, rel);
        assert.equal(await fsp.readlink(pinned.path), join(realRoot, rel));
        const st = await fsp.stat(pinned.path);
        assert.equal(st.mode & 0o7777, 0o4777);
        assert.deepEqual([st.uid, st.gid], [victimOwner.uid, victimOwner.gid]);
      } finally {
        await pinned.close();
      }
    }
  });
});

test('pinPathInRoot create: a directory swapped for a link to a host file right after it is made is never chmod\'ed through', async () => {
  // The PoC of the audit: inotify tells the attacker the moment `a/bN` appears; it moves the
  // directory away and puts a link to the victim in its place before the worker's chown/chmod.
  const swapper = `
    const fs = require('node:fs');
    const [dir, victim] = process.argv.slice(1);
    fs.watch(dir, (ev, name) => {
      if (!name || !/^b\\d+$/.test(name)) return;
      try {
        if (!fs.lstatSync(dir + '/' + name).isDirectory()) return;
        fs.renameSync(dir + '/' + name, dir + '/.old-' + name);
        fs.symlinkSync(victim, dir + '/' + name);
      } catch {}
    });
    process.stdout.write('ready\\n');`;
  await withVictim(async ({ root, outside }) => {
    await fsp.mkdir(join(root, 'a'));
    await withSwapper(swapper, [join(root, 'a'), join(outside, 'victim')], async () => {
      for (let i = 0; i < ATTEMPTS; i++) {
        await pinPathInRoot(root, `a/b${i}`, 'x', { mode: 0o4777, owner: victimOwner }).then((p) => p.close(), () => {});
      }
    });
  });
});

test('pinPathInRoot create: a parent swapped for a link to a host directory after it was checked is never created in', async () => {
  // The attacker keeps turning `p` from a directory into a link to the host directory and back.
  const swapper = `
    const fs = require('node:fs');
    const [p, outside] = process.argv.slice(1);
    process.stdout.write('ready\\n');
    for (;;) {
      try { fs.renameSync(p, p + '.real'); } catch {}
      try { fs.symlinkSync(outside, p); } catch {}
      try { fs.unlinkSync(p); } catch {}
      try { fs.renameSync(p + '.real', p); } catch { try { fs.rmSync(p, { recursive: true, force: true }); } catch {} }
    }`;
  await withVictim(async ({ root, outside }) => {
    await fsp.mkdir(join(root, 'p'));
    await withSwapper(swapper, [join(root, 'p'), outside], async () => {
      for (let i = 0; i < ATTEMPTS; i++) {
        await pinPathInRoot(root, `p/c${i}`, 'x', { mode: 0o4777, owner: victimOwner }).then((p) => p.close(), () => {});
      }
    });
  });
});
