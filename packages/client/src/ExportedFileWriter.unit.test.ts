// The attacker's test for --output type=local: what an earlier export left in dest= (or what a
// misbehaving builder sends) never leads a write outside dest=.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { ExportedFile, KeyValueSpec } from '@buildyard/proto';
import { ExportedFileWriter } from './ExportedFileWriter.js';

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

function setup(): { out: string; outside: string; writer: ExportedFileWriter; cleanup(): void } {
  const base = mkdtempSync(join(tmpdir(), 'buildyard-export-'));
  const out = join(base, 'out');
  const outside = join(base, 'outside');
  mkdirSync(out);
  mkdirSync(outside, { mode: 0o755 });
  writeFileSync(join(outside, 'victim'), 'the user\'s file\n');
  const outputs: KeyValueSpec[] = [{ type: 'local', attrs: { dest: out } }];
  const writer = new ExportedFileWriter(outputs, new Writable({ write: (_c, _e, cb) => cb() }));
  return { out, outside, writer, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

const file = (path: string, data: string, mode = 0o644): ExportedFile => ({ output: 0, path, mode: S_IFREG | mode, data: Buffer.from(data), last: true, linkTarget: '', hardlinkTo: '', cache: false });
const dir = (path: string, mode = 0o755): ExportedFile => ({ output: 0, path, mode: S_IFDIR | mode, data: Buffer.alloc(0), last: true, linkTarget: '', hardlinkTo: '', cache: false });
const hardlink = (path: string, to: string): ExportedFile => ({ output: 0, path, mode: S_IFREG | 0o644, data: Buffer.alloc(0), last: true, linkTarget: '', hardlinkTo: to, cache: false });
const link = (path: string, target: string): ExportedFile => ({ output: 0, path, mode: S_IFLNK | 0o777, data: Buffer.alloc(0), last: true, linkTarget: target, hardlinkTo: '', cache: false });

test('a file written where an earlier export left a symlink replaces the link; the file it named is untouched', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    symlinkSync(join(outside, 'victim'), join(out, 'f'));
    await writer.write(file('f', 'from the build\n'));
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'the user\'s file\n');
    assert.ok(lstatSync(join(out, 'f')).isFile());
    assert.equal(readFileSync(join(out, 'f'), 'utf8'), 'from the build\n');
  } finally {
    cleanup();
  }
});

test('a directory (and files in it) where an earlier export left a symlink to a directory: made for real, nothing written or chmodded through the link', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    symlinkSync(outside, join(out, 'd'));
    symlinkSync(outside, join(out, 'e'));
    await writer.write(dir('d', 0o777));
    await writer.write(file('d/new', 'x'));
    await writer.write(file('e/sub/deep', 'y')); // no directory entry first: its parents are made
    assert.deepEqual(readdirSync(outside), ['victim']);
    assert.equal(statSync(outside).mode & 0o7777, 0o755);
    assert.ok(lstatSync(join(out, 'd')).isDirectory() && lstatSync(join(out, 'e/sub')).isDirectory());
    assert.equal(readFileSync(join(out, 'e/sub/deep'), 'utf8'), 'y');
  } finally {
    cleanup();
  }
});

test('a builder that sends a symlink and then a file beneath it writes nothing outside dest=', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    await writer.write(link('x', outside));
    await writer.write(link('y', '../outside'));
    await writer.write(file('x/victim', 'overwritten'));
    await writer.write(file('y/planted', 'planted'));
    assert.deepEqual(readdirSync(outside), ['victim']);
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'the user\'s file\n');
    assert.equal(readFileSync(join(out, 'x/victim'), 'utf8'), 'overwritten');
    // A link written after a directory of the same name replaces it; writes beneath then go to a new directory.
    await writer.write(dir('z'));
    await writer.write(link('z', outside));
    await writer.write(file('z/again', 'z'));
    assert.deepEqual(readdirSync(outside), ['victim']);
  } finally {
    cleanup();
  }
});

// Times as BuildKit's client sets them (fsutil's chtimes: atime = mtime, never through a link).
const at = <T extends ExportedFile>(f: T, seconds: number): T => ({ ...f, mtimeNs: (BigInt(seconds) * 1_000_000_000n).toString() });
const times = (path: string) => { const st = lstatSync(path); return [st.mtimeMs / 1000, st.atimeMs / 1000]; };

test('a builder that names dest= itself (or a second spelling of a path) is refused: dest= is never replaced, chmod\'ed or written through', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    const home = join(outside, 'home');
    mkdirSync(home, { mode: 0o700 });
    mkdirSync(join(home, '.ssh'), { mode: 0o700 });
    // The proof of the audit: a link where dest= is, then a file "beneath" it.
    for (const path of ['', '.', './', 'x/..', 'x/../', '/', '//', 'a//b', './a', 'a/.', 'a/./b', '/abs', 'a/../../x']) {
      await assert.rejects(writer.write(link(path, home)), /not a clean relative path|for .* itself/, `link "${path}"`);
      await assert.rejects(writer.write(file(path, 'ssh-ed25519 attacker')), /not a clean relative path|for .* itself/, `file "${path}"`);
    }
    await writer.write(dir('', 0o777)); // dest= itself: made, its mode kept
    await writer.write(file('.ssh/authorized_keys', 'ssh-ed25519 attacker'));
    await writer.finish();
    assert.ok(lstatSync(out).isDirectory());
    assert.equal(statSync(out).mode & 0o7777, 0o755);
    assert.deepEqual(readdirSync(join(home, '.ssh')), []);
    assert.deepEqual(readdirSync(outside).sort(), ['home', 'victim']);
    assert.equal(readFileSync(join(out, '.ssh/authorized_keys'), 'utf8'), 'ssh-ed25519 attacker');
  } finally {
    cleanup();
  }
});

test('a directory made earlier is written into only while its path still leads to it: a link put in its place (as a case-insensitive filesystem lets "x" replace "X/") is replaced, never followed', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    await writer.write(dir('X'));
    await writer.write(dir('X/sub'));
    await writer.write(file('X/sub/f', 'first'));
    await writer.write(file('keep', 'kept'));
    // On macOS the builder's next entry, link "x", is this very swap; here it is done by hand.
    rmSync(join(out, 'X'), { recursive: true });
    symlinkSync(outside, join(out, 'X'));
    await writer.write(file('X/victim', 'overwritten'));
    await writer.write(file('X/sub/f', 'second'));
    // A hardlink's source is held to the inode written too.
    rmSync(join(out, 'keep'));
    symlinkSync(join(outside, 'victim'), join(out, 'keep'));
    await assert.rejects(writer.write(hardlink('h', 'keep')), /is not a file it sent before/);
    await writer.finish();
    assert.deepEqual(readdirSync(outside), ['victim']);
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'the user\'s file\n');
    assert.ok(lstatSync(join(out, 'X')).isDirectory());
    assert.equal(readFileSync(join(out, 'X/sub/f'), 'utf8'), 'second');
  } finally {
    cleanup();
  }
});

test('a file, a symlink and a directory get the times sent, the directory once the stream ends and after what was written into it', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    utimesSync(join(outside, 'victim'), 1_500_000_000, 1_500_000_000);
    await writer.write(at(dir('d'), 1_222_222_222));
    await writer.write(at(dir('d/sub'), 1_333_333_333));
    await writer.write(at(file('d/f', 'f\n'), 1_000_000_000));
    await writer.write(at(link('d/l', join(outside, 'victim')), 1_111_111_111));
    await writer.write(at(file('d/sub/g', 'g\n'), 1_444_444_444));
    assert.deepEqual(times(join(out, 'd/f')), [1_000_000_000, 1_000_000_000]);
    assert.deepEqual(times(join(out, 'd/l')), [1_111_111_111, 1_111_111_111]);
    assert.deepEqual(times(join(outside, 'victim')), [1_500_000_000, 1_500_000_000], 'the link\'s target keeps its time');
    await writer.finish();
    assert.deepEqual(times(join(out, 'd')), [1_222_222_222, 1_222_222_222]);
    assert.deepEqual(times(join(out, 'd/sub')), [1_333_333_333, 1_333_333_333]);
    assert.deepEqual(times(join(out, 'd/sub/g')), [1_444_444_444, 1_444_444_444]);
    assert.deepEqual(times(out).map((t) => t > 1_500_000_000), [true, true], 'dest= itself is not an entry: it keeps its own time');
  } finally {
    cleanup();
  }
});

test('entries without a time (an older server) keep the time their write gave them', async () => {
  const { out, writer, cleanup } = setup();
  try {
    const before = Date.now() / 1000 - 5; // the file system's clock may be coarser than Date.now
    await writer.write(dir('d'));
    await writer.write(file('d/f', 'f'));
    await writer.write(link('l', 'd/f'));
    await writer.finish();
    for (const p of ['d', 'd/f', 'l']) assert.ok(times(join(out, p)).every((t) => t > before), p);
  } finally {
    cleanup();
  }
});

test('a directory time is never set through a link that replaced the directory, or one of its parents, later in the stream or behind the writer\'s back', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    mkdirSync(join(outside, 'sub'));
    utimesSync(outside, 1_500_000_000, 1_500_000_000);
    utimesSync(join(outside, 'sub'), 1_500_000_000, 1_500_000_000);
    await writer.write(at(dir('a'), 1_000_000_000));
    await writer.write(at(dir('b'), 1_000_000_000));
    await writer.write(at(dir('b/sub'), 1_000_000_000));
    await writer.write(at(dir('c'), 1_000_000_000));
    await writer.write(link('a', outside));
    await writer.write(link('b', outside));
    // Swapped for a link behind the writer's back: the open without following refuses it.
    rmSync(join(out, 'c'), { recursive: true });
    symlinkSync(outside, join(out, 'c'));
    await writer.finish();
    assert.deepEqual(times(outside), [1_500_000_000, 1_500_000_000]);
    assert.deepEqual(times(join(outside, 'sub')), [1_500_000_000, 1_500_000_000]);
    assert.ok(['a', 'b', 'c'].every((p) => lstatSync(join(out, p)).isSymbolicLink()));
  } finally {
    cleanup();
  }
});


test('a hardlink is linked to the file the builder sent before it, as fsutil\'s DiskWriter links Stat.linkname', async () => {
  const { out, writer, cleanup } = setup();
  try {
    await writer.write(dir('d'));
    await writer.write(file('d/f', 'shared\n'));
    await writer.write(hardlink('h', 'd/f'));
    assert.equal(statSync(join(out, 'h')).ino, statSync(join(out, 'd/f')).ino);
    assert.equal(statSync(join(out, 'h')).nlink, 2);
  } finally {
    cleanup();
  }
});

test('a hardlink may only name a file this export wrote: not a file already in dest= or outside it, not itself, not a symlink it sent', async () => {
  const { out, outside, writer, cleanup } = setup();
  try {
    writeFileSync(join(out, 'old'), 'the user\'s file\n');
    await writer.write(link('l', join(outside, 'victim')));
    await writer.write(file('f', 'x'));
    for (const [path, to] of [['h1', 'old'], ['h2', '../outside/victim'], ['h3', 'l'], ['f', 'f'], ['h4', 'missing']]) {
      await assert.rejects(writer.write(hardlink(path, to)), /is not a file it sent before in output #0; the builder is misbehaving/);
    }
    assert.equal(statSync(join(outside, 'victim')).nlink, 1);
    assert.equal(statSync(join(out, 'old')).nlink, 1);
    assert.equal(readFileSync(join(out, 'f'), 'utf8'), 'x', 'the file named as its own link is kept');
    assert.deepEqual(readdirSync(out).sort(), ['f', 'l', 'old']);
  } finally {
    cleanup();
  }
});

test('a file written where an earlier export left one name of a hardlinked file replaces that name: the other keeps its content', async () => {
  const { out, writer, cleanup } = setup();
  try {
    writeFileSync(join(out, 'a'), 'first export\n');
    linkSync(join(out, 'a'), join(out, 'b'));
    await writer.write(file('b', 'second export\n'));
    assert.equal(readFileSync(join(out, 'a'), 'utf8'), 'first export\n');
    assert.equal(readFileSync(join(out, 'b'), 'utf8'), 'second export\n');
  } finally {
    cleanup();
  }
});

// type=oci|docker,tar=false (and local cache exports): the dest is an OCI layout the build adds to.
const REF = 'org.opencontainers.image.ref.name';
const IMAGE = 'io.containerd.image.name';
const entry = (digest: string, annotations: Record<string, string>) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1, annotations });

function layoutSetup(attrs: Record<string, string> = { tar: 'false' }) {
  const base = mkdtempSync(join(tmpdir(), 'buildyard-layout-'));
  const out = join(base, 'layout');
  const writer = new ExportedFileWriter([{ type: 'oci', attrs: { dest: out, ...attrs } }], new Writable({ write: (_c, _e, cb) => cb() }));
  return { base, out, writer, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

test('tar=false: a layout directory keeps the images already in it, and an image of the same name is replaced', async () => {
  const { out, writer, cleanup } = layoutSetup();
  try {
    mkdirSync(join(out, 'blobs/sha256'), { recursive: true });
    writeFileSync(join(out, 'blobs/sha256/aa'), 'old blob', { mode: 0o444 });
    writeFileSync(join(out, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [
      entry('sha256:old1', { [REF]: '1', [IMAGE]: 'docker.io/library/app:1' }),
      entry('sha256:old2', { [REF]: '1', [IMAGE]: 'docker.io/library/other:1' }),
      entry('sha256:old3', { [REF]: 'latest' }),
      entry('sha256:old4', {}),
    ] }));
    await writer.write(file('blobs/sha256/aa', 'old blob', 0o444)); // a blob it holds: rewritten, though read-only
    await writer.write(file('blobs/sha256/bb', 'new blob', 0o444));
    await writer.write(file('oci-layout', '{"imageLayoutVersion":"1.0.0"}'));
    const incoming = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [entry('sha256:new', { [REF]: '1', [IMAGE]: 'docker.io/library/app:1' })] });
    await writer.write({ ...file('index.json', incoming.slice(0, 10)), last: false });
    assert.equal(writer.pending, 1, 'an index.json still arriving is pending');
    await writer.write(file('index.json', incoming.slice(10)));
    await writer.finish();
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { mediaType: string; manifests: Array<{ digest: string }> };
    assert.deepEqual(index.manifests.map((m) => m.digest), ['sha256:old2', 'sha256:old3', 'sha256:old4', 'sha256:new']);
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(readFileSync(join(out, 'blobs/sha256/bb'), 'utf8'), 'new blob');
    assert.equal(statSync(join(out, 'blobs/sha256/bb')).mode & 0o777, 0o444);
    assert.equal(writer.pending, 0);
    assert.deepEqual([...writer.written], [out]);
    assert.deepEqual(readdirSync(out).sort(), ['blobs', 'index.json', 'oci-layout'], 'no temp file left');
  } finally {
    cleanup();
  }
});

test('tar=false: an index.json that is a link is replaced, never read or written through; paths stay inside the layout', async () => {
  const { base, out, writer, cleanup } = layoutSetup({ tar: 'False' });
  try {
    mkdirSync(out);
    const victim = join(base, 'victim.json');
    writeFileSync(victim, JSON.stringify({ manifests: [entry('sha256:secret', { [REF]: 'x' })] }));
    symlinkSync(victim, join(out, 'index.json'));
    await writer.write(file('index.json', JSON.stringify({ schemaVersion: 2, manifests: [entry('sha256:new', { [REF]: 'latest' })] })));
    assert.ok(lstatSync(join(out, 'index.json')).isFile());
    assert.deepEqual((JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }).manifests.map((m) => m.digest), ['sha256:new']);
    assert.match(readFileSync(victim, 'utf8'), /secret/);
    await assert.rejects(writer.write(file('../escape', 'x')), /not a clean relative path/);
    await assert.rejects(writer.write(file('index.json', 'not json')), /index\.json: the builder sent an index\.json that is not JSON/);
  } finally {
    cleanup();
  }
});

test('tar=true (or no tar=) stays one archive file at dest', async () => {
  const { out, writer, cleanup } = layoutSetup({ tar: 'true' });
  try {
    await writer.write(file('', 'tar bytes'));
    assert.equal(readFileSync(out, 'utf8'), 'tar bytes');
  } finally {
    cleanup();
  }
});

test('type=local,mode=delete: dest keeps only what the build sent; a stale link goes as a link (what it names stays); without mode=delete nothing is removed', async () => {
  const base = mkdtempSync(join(tmpdir(), 'buildyard-delete-'));
  try {
    const out = join(base, 'out');
    const outside = join(base, 'outside');
    mkdirSync(join(out, 'd/stale-dir'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, 'victim'), 'keep me\n');
    writeFileSync(join(out, 'stale'), 'x');
    writeFileSync(join(out, 'd/stale-file'), 'x');
    symlinkSync(outside, join(out, 'link-out'));
    const writer = new ExportedFileWriter([{ type: 'local', attrs: { dest: out, mode: 'Delete' } }], new Writable({ write: (_c, _e, cb) => cb() }));
    await writer.write(dir('d'));
    await writer.write(file('d/f', 'new'));
    await writer.write(file('top', 'new'));
    await writer.finish();
    assert.deepEqual(readdirSync(out).sort(), ['d', 'top']);
    assert.deepEqual(readdirSync(join(out, 'd')), ['f']);
    assert.equal(readFileSync(join(outside, 'victim'), 'utf8'), 'keep me\n');
    // The default (copy) leaves what was there.
    writeFileSync(join(out, 'stale'), 'x');
    const copy = new ExportedFileWriter([{ type: 'local', attrs: { dest: out } }], new Writable({ write: (_c, _e, cb) => cb() }));
    await copy.write(file('top', 'again'));
    await copy.finish();
    assert.deepEqual(readdirSync(out).sort(), ['d', 'stale', 'top']);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
