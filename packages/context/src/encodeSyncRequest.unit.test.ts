// The client's content serializer writes the bytes the generated encoder writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ContextSyncService, SyncRequest } from '@buildyard/proto';
import { encodeSyncRequest } from './encodeSyncRequest.js';

const generated = (msg: SyncRequest) => ContextSyncService.sync.requestSerialize(msg);
const digest = (i: number) => `sha256:${i.toString(16).padStart(64, '0')}`;

test('blobs and chunks encode as the generated encoder does, at every length-prefix width', () => {
  // Sizes around each varint boundary of the chunk, the batch and the data lengths.
  const sizes = [0, 1, 40, 127, 128, 16_300, 16_384, 70_000, 300_000, 2_097_152 + 5];
  const messages: SyncRequest[] = [
    ...sizes.map((n, i) => ({ chunk: { digest: digest(i), data: randomBytes(n), last: i % 2 === 0 } })),
    { chunk: { digest: '', data: Buffer.alloc(0), last: false } },
    { blobs: { blobs: [] } },
    { blobs: { blobs: sizes.map((n, i) => ({ digest: digest(i), data: randomBytes(n), last: true })) } },
    { blobs: { blobs: [{ digest: 'sha256:é', data: randomBytes(3), last: false }] } },
    // Everything else goes through the generated encoder.
    { entriesDone: true },
    { base: { contextId: digest(7) } },
    { entries: { entries: [{ path: 'a', mode: 0o100644, size: 3, digest: digest(1), linkTarget: '', modTime: '12', xattrs: [{ name: 'user.a', value: Buffer.from('b') }] }], removed: ['b'] } },
    // A hard link (entries are the generated encoder's: a new field needs nothing here).
    { entries: { entries: [{ path: 'a', mode: 0o100644, size: 3, digest: digest(1), linkTarget: '', modTime: '12', xattrs: [] }, { path: 'c', mode: 0o100644, size: 3, digest: digest(1), linkTarget: '', modTime: '12', xattrs: [], hardlinkTo: 'a' }], removed: [] } },
  ];
  for (const msg of messages) {
    const ours = encodeSyncRequest(msg);
    assert.ok(Buffer.isBuffer(ours));
    assert.deepEqual(ours, generated(msg), JSON.stringify(Object.keys(msg)));
    assert.deepEqual(SyncRequest.decode(ours), SyncRequest.decode(generated(msg)));
  }
});
