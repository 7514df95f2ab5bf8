// Context files' extended attributes through the installed CLI and through the BuildKit endpoint
// (buildctl sends fsutil's Stat.Xattrs): a user.* attribute is part of the COPY's cache key, as
// BuildKit's checksum covers it, and a changed one is noticed on the next build (BuildKit's own
// incremental sync misses an attribute-only change; both clients here notice it). No layer
// carries a context file's attributes: BuildKit's receiver loses security.capability to its
// chown, and layers keep nothing else (conformance case edges/xattrs-context-copy).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { setXattrs } from '@buildyard/snapshot';
import { appCommand, referenceTools, startCluster, type Cluster } from '@buildyard/testkit';

const tools = referenceTools('buildctl');
const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster)';
let cluster: Cluster;
let work: string;

before(async () => {
  if (skip) return;
  cluster = await startCluster({
    workers: 1,
    env: { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' },
  });
  work = mkdtempSync(join(tmpdir(), 'buildyard-ctx-xattrs-e2e-'));
});
after(async () => {
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Run { code: number; output: string }

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(command, args, { env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: 600_000 }, (err, stdout, stderr) => {
      resolveRun({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, output: stdout + stderr });
    });
  });
}

/** A context whose COPY reads `note` (and `app`, with a capability), built to an OCI tarball. */
function makeContext(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nCOPY note app /x/\n`);
  writeFileSync(join(dir, 'note'), `${name}\n`); // each test's own, or one would hit the other's cache
  writeFileSync(join(dir, 'app'), 'binary\n');
  // VFS_CAP_REVISION_2, effective, cap_net_bind_service permitted.
  setXattrs(join(dir, 'app'), [['security.capability', Buffer.from([1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])]]);
  setXattrs(join(dir, 'note'), [['user.version', Buffer.from('1')]]);
  return dir;
}

/** Whether the build's plain progress shows its COPY answered from the cache. */
function copyCached(output: string): boolean {
  const step = /^#(\d+) \[\d+\/\d+\] COPY note app \/x\//m.exec(output);
  assert.ok(step, output);
  return new RegExp(`^#${step[1]} CACHED$`, 'm').test(output);
}

/** The layer blobs of an OCI tarball that hold a PAX xattr record (none of the files' contents spell one). */
function layersWithXattrs(tarball: string): string[] {
  const dir = mkdtempSync(join(work, 'oci-'));
  assert.equal(spawnSync('tar', ['-xf', tarball, '-C', dir]).status, 0);
  const blobs = join(dir, 'blobs', 'sha256');
  return readdirSync(blobs).filter((name) => {
    const bytes = readFileSync(join(blobs, name));
    if (bytes[0] !== 0x1f || bytes[1] !== 0x8b) return false; // a manifest, index or config
    return gunzipSync(bytes).includes('SCHILY.xattr.');
  });
}

function changeNoteAttribute(dir: string): void {
  setXattrs(join(dir, 'note'), [['user.version', Buffer.from('2')]]);
}

test('buildyard build: a context file\'s user.* attribute keys its COPY (unchanged: cached; changed: copied again); no layer carries an attribute', { skip }, async () => {
  const dir = makeContext('cli');
  const env = { XDG_CONFIG_HOME: join(work, 'config'), BUILDYARD_CACHE_DIR: join(work, 'cli-cache'), BUILDYARD_BUILDER: cluster.frontend, BUILDYARD_TOKEN: cluster.token };
  const build = (out: string) => run(process.execPath, appCommand('cli', 'build', '--progress', 'plain', '-o', `type=oci,dest=${join(work, out)}`, dir), env);
  const first = await build('cli-1.tar');
  assert.equal(first.code, 0, first.output);
  assert.equal(copyCached(first.output), false);
  assert.deepEqual(layersWithXattrs(join(work, 'cli-1.tar')), [], 'the capability is not kept, as BuildKit\'s receiver loses it');
  const same = await build('cli-2.tar');
  assert.equal(same.code, 0, same.output);
  assert.equal(copyCached(same.output), true, 'nothing changed');
  changeNoteAttribute(dir);
  const changed = await build('cli-3.tar');
  assert.equal(changed.code, 0, changed.output);
  assert.equal(copyCached(changed.output), false, 'the attribute changed: a different source');
});

test('buildctl through the BuildKit endpoint: fsutil\'s Stat.Xattrs key the COPY the same way', { skip: skip || tools.missing || false }, async () => {
  const dir = makeContext('buildctl');
  const build = (out: string) => run(tools.paths.buildctl, ['--addr', cluster.buildkit!, 'build', '--frontend', 'dockerfile.v0', '--local', `context=${dir}`, '--local', `dockerfile=${dir}`,
    '--progress', 'plain', '--output', `type=oci,dest=${join(work, out)}`]);
  const first = await build('bk-1.tar');
  assert.equal(first.code, 0, first.output);
  assert.equal(copyCached(first.output), false);
  assert.deepEqual(layersWithXattrs(join(work, 'bk-1.tar')), []);
  const same = await build('bk-2.tar');
  assert.equal(same.code, 0, same.output);
  assert.equal(copyCached(same.output), true);
  changeNoteAttribute(dir);
  const changed = await build('bk-3.tar');
  assert.equal(changed.code, 0, changed.output);
  assert.equal(copyCached(changed.output), false);
});
