// type=local and type=tar unpack the image before sending it: within a budget for the whole
// export, 90% of the free space of the disk they unpack to. Needs root: a small tmpfs is that disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { createGzip } from 'node:zlib';
import { FsContentStore } from '@buildyard/oci';
import { zerosTar } from '@buildyard/testkit';
import type { AssembledImage } from '@buildyard/solver';
import type { ExportFile, OutputType, ParsedOutput } from './Exporter.js';
import { runExport } from './index.js';

const MIB = 1024 ** 2;
const canMount = process.getuid?.() === 0;

const output = (type: OutputType): ParsedOutput => ({ index: 0, type, names: [], push: false, rewriteTimestamp: false });

test('the attacker: an image whose small gzip layers expand past 90% of the free space of the export\'s disk fails the export in one line, nothing left behind', { skip: canMount ? false : 'needs root (tmpfs)' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-export-bomb-'));
  const scratch = join(dir, 'scratch');
  await mkdir(scratch);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', scratch]);
  try {
    const blobs = new FsContentStore(join(dir, 'blobs'));
    const layer = async (size: number) => {
      const { digest, size: bytes } = await blobs.put(Readable.from(zerosTar(size)).pipe(createGzip({ level: 9 })));
      return { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest, size: bytes };
    };
    // The exporter reads only the platform and layers of an image.
    const image = (platform: string, layers: Array<Awaited<ReturnType<typeof layer>>>) => ({ platform, layers }) as unknown as AssembledImage;
    const bomb = await layer(256 * MIB);
    assert.ok(bomb.size < 512 * 1024, `the layer is small: ${bomb.size} bytes`);
    // 10 MiB fits the budget (90% of 16 MiB) once, not twice: the budget is the whole export's.
    const tenMiB = await layer(10 * MIB);
    const cases = [
      { type: 'tar' as const, images: [image('linux/amd64', [bomb])] },
      { type: 'local' as const, images: [image('linux/amd64', [tenMiB]), image('linux/arm64', [tenMiB])] },
    ];
    for (const { type, images } of cases) {
      const files: string[] = [];
      const exporting = runExport(output(type), { images, blobs, scratchDir: scratch }, async (f: ExportFile) => {
        files.push(f.path);
        if (f.content) await buffer(f.content);
      });
      await assert.rejects(exporting, (err: Error) => {
        assert.match(err.message, /^layer content expands to more than \d+ bytes \(tar bomb\?\); an export unpacks at most 90% of the free space of the frontend's disk and 1000000 entries: export a smaller stage, or have the operator free space there$/, type);
        return true;
      });
      assert.deepEqual(files, [], `${type}: nothing was sent`);
      assert.deepEqual(await readdir(scratch), [], `${type}: the export's temp directories are removed`);
    }
  } finally {
    execFileSync('umount', [scratch]);
    await rm(dir, { recursive: true, force: true });
  }
});
