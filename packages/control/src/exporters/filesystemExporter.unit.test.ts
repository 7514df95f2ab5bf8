// type=local and type=tar keep the image filesystem's times, and SOURCE_DATE_EPOCH replaces every
// one of them, as BuildKit's exporter/local/fs.go does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { FsContentStore } from '@buildyard/oci';
import { writeLayerTar, type LayerEntry } from '@buildyard/snapshot';
import type { AssembledImage } from '@buildyard/solver';
import type { BuildAttestations } from './buildAttestations.js';
import type { ExportFile, ExportSource, OutputType, ParsedOutput } from './Exporter.js';
import { runExport } from './index.js';

const LAYER: LayerEntry[] = [
  { path: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1_222_222_222 },
  { path: 'd/f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_000_000_000, data: Buffer.from('f\n'), size: 2 },
  { path: 'l', type: 'symlink', mode: 0o777, uid: 0, gid: 0, mtime: 1_111_111_111, linkname: 'd/f' },
];
const ns = (seconds: number) => BigInt(seconds) * 1_000_000_000n;

/** An export source of the LAYER for each platform, its blobs in a temp store. */
async function source(platforms: string[], extra: Partial<ExportSource> = {}): Promise<{ source: ExportSource; cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-fsexport-'));
  const blobs = new FsContentStore(dir);
  const { digest, size } = await blobs.put(writeLayerTar(LAYER, {}));
  const layers = [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size }];
  // The exporter reads only the platform and layers of an image.
  const images = platforms.map((platform) => ({ platform, layers }) as unknown as AssembledImage);
  return { source: { images, blobs, ...extra }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const output = (type: OutputType, sourceDateEpoch?: number): ParsedOutput => ({ index: 0, type, names: [], push: false, rewriteTimestamp: false, sourceDateEpoch });

/** Reads each file's content to its end before the next, as a client does: the exporter removes its files when done. */
async function drain(f: ExportFile): Promise<void> {
  if (f.content) await buffer(f.content);
}

async function exported(out: ParsedOutput, src: ExportSource): Promise<Map<string, bigint | undefined>> {
  const times = new Map<string, bigint | undefined>();
  await runExport(out, src, async (f: ExportFile) => { await drain(f); times.set(f.path, f.mtimeNs); });
  return times;
}

test('type=local: files, directories and symlinks carry the times the image has', async () => {
  const { source: src, cleanup } = await source(['linux/amd64']);
  try {
    assert.deepEqual(await exported(output('local'), src), new Map([['d', ns(1_222_222_222)], ['d/f', ns(1_000_000_000)], ['l', ns(1_111_111_111)]]));
  } finally {
    cleanup();
  }
});

test('SOURCE_DATE_EPOCH gives every entry its time, platform folders and attestation files included; the output\'s source-date-epoch overrides it', async () => {
  const attestations: BuildAttestations = {
    images: [],
    byPlatform: new Map(['linux/amd64', 'linux/arm64'].map((p) => [p, [{ predicateType: 'https://slsa.dev/provenance/v0.2', predicate: {}, filename: 'provenance.json', inlineOnly: false }]])),
  };
  const { source: src, cleanup } = await source(['linux/amd64', 'linux/arm64'], { attestations, sourceDateEpoch: '1700000000' });
  try {
    const times = await exported(output('local'), src);
    assert.deepEqual([...times.keys()].sort(), ['linux_amd64', 'linux_amd64/d', 'linux_amd64/d/f', 'linux_amd64/l', 'linux_amd64/provenance.json',
      'linux_arm64', 'linux_arm64/d', 'linux_arm64/d/f', 'linux_arm64/l', 'linux_arm64/provenance.json']);
    assert.deepEqual(new Set(times.values()), new Set([ns(1_700_000_000)]));
    assert.deepEqual(new Set((await exported(output('local', 0), src)).values()), new Set([0n]), 'source-date-epoch=0 is a time too');
  } finally {
    cleanup();
  }
});

test('without an epoch, platform folders have time 0 (BuildKit\'s platformDirStat) and attestation files the export\'s', async () => {
  const attestations: BuildAttestations = { images: [], byPlatform: new Map([['linux/arm64', [{ predicateType: 'p', predicate: {}, filename: 'att.json', inlineOnly: false }]]]) };
  const { source: src, cleanup } = await source(['linux/amd64', 'linux/arm64'], { attestations });
  try {
    const before = Math.floor(Date.now() / 1000);
    const times = await exported(output('local'), src);
    assert.equal(times.get('linux_amd64'), 0n);
    assert.equal(times.get('linux_arm64/d/f'), ns(1_000_000_000));
    assert.ok(times.get('linux_arm64/att.json')! >= ns(before), 'the attestation file has the export\'s time');
  } finally {
    cleanup();
  }
});

test('type=tar: the entries keep their times; with SOURCE_DATE_EPOCH every one has it', async () => {
  const list = async (src: ExportSource, out = output('tar')): Promise<string[]> => {
    let tar = Buffer.alloc(0);
    await runExport(out, src, async (f) => { tar = await buffer(f.content!); });
    const listed = spawnSync('tar', ['-tv', '--full-time'], { input: tar, encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    assert.equal(listed.status, 0, listed.stderr);
    return listed.stdout.trim().split('\n').map((l) => / (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (\S+?)\/?(?: -> .*)?$/.exec(l)!.slice(1).reverse().join(' '));
  };
  const { source: src, cleanup } = await source(['linux/amd64']);
  try {
    assert.deepEqual(await list(src), ['d 2008-09-24 02:10:22', 'd/f 2001-09-09 01:46:40', 'l 2005-03-18 01:58:31']);
    assert.deepEqual(await list({ ...src, sourceDateEpoch: '1700000000' }), ['d 2023-11-14 22:13:20', 'd/f 2023-11-14 22:13:20', 'l 2023-11-14 22:13:20']);
    assert.deepEqual(await list({ ...src, sourceDateEpoch: 'soon' }), ['d 2008-09-24 02:10:22', 'd/f 2001-09-09 01:46:40', 'l 2005-03-18 01:58:31'], 'not a number: no epoch, as BuildKit\'s ParseBuildArgs');
  } finally {
    cleanup();
  }
});

test('platform-split, as BuildKit\'s local exporter: true puts even one platform in its folder; false merges platforms (attestation files named by platform) and a file two platforms both have is an error; attestation-prefix goes before their names', async () => {
  const attestations: BuildAttestations = {
    images: [],
    byPlatform: new Map(['linux/amd64', 'linux/arm64'].map((p) => [p, [{ predicateType: 'https://slsa.dev/provenance/v0.2', predicate: {}, filename: 'provenance.json', inlineOnly: false }]])),
  };
  const withAttrs = (attrs: Partial<ParsedOutput>) => ({ ...output('local'), ...attrs });
  const one = await source(['linux/amd64'], { attestations });
  try {
    assert.deepEqual([...(await exported(withAttrs({ platformSplit: true, attestationPrefix: 'att-' }), one.source)).keys()].sort(),
      ['linux_amd64', 'linux_amd64/att-provenance.json', 'linux_amd64/d', 'linux_amd64/d/f', 'linux_amd64/l']);
  } finally {
    one.cleanup();
  }
  const two = await source(['linux/amd64', 'linux/arm64'], { attestations });
  try {
    await assert.rejects(runExport(withAttrs({ platformSplit: false }), two.source, drain),
      /cannot overwrite d\/f from linux\/amd64 with linux\/arm64 when split option is disabled/);
  } finally {
    two.cleanup();
  }
  // Files named apart per platform merge; directories both have come once.
  const { source: src, cleanup } = await source(['linux/amd64', 'linux/arm64'], { attestations });
  try {
    const distinct = src.images.map((image) => ({ ...image }));
    for (const [i, image] of distinct.entries()) {
      const { digest, size } = await src.blobs.put(writeLayerTar([LAYER[0]!, { ...LAYER[1]!, path: `d/f-${i}` }], {}));
      image.layers = [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size } as (typeof image.layers)[number]];
    }
    const paths = [...(await exported(withAttrs({ platformSplit: false }), { ...src, images: distinct })).keys()];
    assert.deepEqual(paths.sort(), ['d', 'd/f-0', 'd/f-1', 'provenance.linux_amd64.json', 'provenance.linux_arm64.json']);
  } finally {
    cleanup();
  }
});

test('a receiver that fails (the client went away) still leaves no temporary root behind, and the file it held is closed', async () => {
  const { source: src, cleanup } = await source(['linux/amd64', 'linux/arm64']);
  const tmp = mkdtempSync(join(tmpdir(), 'buildyard-fsexport-tmp-'));
  const before = process.env.TMPDIR;
  process.env.TMPDIR = tmp; // os.tmpdir() reads it on each call: the exporter's roots land here
  try {
    let held: ExportFile['content'];
    await assert.rejects(runExport(output('local'), src, async (f) => {
      if (!f.content) return;
      held = f.content;
      throw new Error('the client went away');
    }), /the client went away/);
    assert.ok(held?.destroyed, 'the content of the file being sent is closed');
    assert.deepEqual(readdirSync(tmp), [], 'the exporter removed its roots');
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    rmSync(tmp, { recursive: true, force: true });
    cleanup();
  }
});
