import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectForPrune, type CacheRecord } from './index.js';

const rec = (key: string, size: number, lastUsedMs: number): CacheRecord => ({
  key, layer: { digest: `sha256:${key}`, diffID: '', size, mediaType: '' }, description: key, platform: 'linux/amd64', createdMs: 0, lastUsedMs, usageCount: 1,
});
const records = [rec('old', 50, 1_000), rec('mid', 30, 2_000), rec('new', 20, 3_000)];

test('keepBytes removes least recently used first until the total fits', () => {
  assert.deepEqual(selectForPrune(records, { keepBytes: 60 }, new Set()).map((r) => r.key), ['old']);
  assert.deepEqual(selectForPrune(records, { keepBytes: 20 }, new Set()).map((r) => r.key), ['old', 'mid']);
  assert.deepEqual(selectForPrune(records, { keepBytes: 1_000 }, new Set()), []);
});

test('keepDuration removes entries unused for longer than the duration', () => {
  assert.deepEqual(selectForPrune(records, { keepDurationMs: 1_500 }, new Set(), 3_600).map((r) => r.key), ['old', 'mid']);
});

test('entries in use are never chosen, even with all', () => {
  assert.deepEqual(selectForPrune(records, { all: true }, new Set(['mid'])).map((r) => r.key), ['old', 'new']);
  assert.deepEqual(selectForPrune(records, { keepBytes: 0 }, new Set(['old'])).map((r) => r.key), ['mid', 'new']);
});
