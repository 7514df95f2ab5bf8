import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseShmSize, parseUlimit, ramInBytes } from './units.js';

test('RAMInBytes: binary multiples, optional i/b, plain bytes', () => {
  assert.equal(ramInBytes('64m'), 64 * 1024 ** 2);
  assert.equal(ramInBytes('1GiB'), 1024 ** 3);
  assert.equal(ramInBytes('1.5k'), 1536);
  assert.equal(ramInBytes('123'), 123);
  assert.equal(ramInBytes('12x'), undefined);
  assert.equal(parseShmSize(''), 0);
  assert.equal(parseShmSize('128m'), 128 * 1024 ** 2);
  assert.throws(() => parseShmSize('lots'), /invalid shm size "lots"/);
});

test('ulimits as go-units ParseUlimit reads them, with its messages', () => {
  assert.deepEqual(parseUlimit('nofile=1024:2048'), { name: 'nofile', soft: 1024, hard: 2048 });
  assert.deepEqual(parseUlimit('nproc=512'), { name: 'nproc', soft: 512, hard: 512 });
  assert.throws(() => parseUlimit('nofile'), /invalid ulimit argument: nofile/);
  assert.throws(() => parseUlimit('files=1'), /invalid ulimit type: files/);
  assert.throws(() => parseUlimit('nofile=1:2:3'), /too many limit value arguments/);
  assert.throws(() => parseUlimit('nofile=2048:1024'), /soft limit must be less than or equal to hard limit: 2048 > 1024/);
  assert.throws(() => parseUlimit('nofile=many'), /invalid ulimit value "many"/);
});
