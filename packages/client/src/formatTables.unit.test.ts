import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDiskUsage, formatDiskUsageVerbose } from './formatTables.js';

const NOW = 1_700_000_000_000;
const DU = {
  records: [
    { id: 'k1', description: 'RUN make', size: 2048, lastUsedMs: NOW - 120_000, usageCount: 3, inUse: false, shared: true },
    { id: 'k2', description: 'local source for context', size: 4096, lastUsedMs: NOW - 5_000, usageCount: 1, inUse: true, shared: false },
  ],
  totalBytes: 6144,
  reclaimableBytes: 2048,
};

test('du --verbose prints one block per record with its details, then the totals (buildx du --verbose)', () => {
  const lines = formatDiskUsageVerbose(DU, NOW);
  assert.notDeepEqual(lines, formatDiskUsage(DU, NOW));
  const text = lines.join('\n');
  const blocks = text.split('\n\n');
  assert.equal(blocks.length, 3, text);
  assert.match(blocks[0], /^ID:\s+k2$/m, 'largest first');
  assert.match(blocks[0], /^Description:\s+local source for context$/m);
  assert.match(blocks[0], /^Reclaimable:\s+false$/m);
  assert.match(blocks[1], /^Shared:\s+true$/m);
  assert.match(blocks[1], /^Usage count:\s+3$/m);
  assert.match(blocks[1], /^Last used:\s+2 minutes ago$/m);
  assert.match(blocks[2], /^Private:\s+4.10kB$/m);
  assert.match(blocks[2], /^Total:\s+6.14kB$/m);
});
