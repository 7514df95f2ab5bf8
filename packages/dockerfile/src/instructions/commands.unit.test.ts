import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '../parse.js';
import { CommandError, copyCommand, fromCommand, healthcheckTimings, runCommand } from './commands.js';

const instruction = (line: string) => parse(`FROM scratch\n${line}\n`).stages[0].instructions[0];

test('COPY/ADD flags as typed fields, values unexpanded', () => {
  assert.deepEqual(copyCommand(instruction('COPY --from=build --chown=$U --link --exclude=*.md --exclude=$X a /d/')), {
    from: 'build', chown: '$U', chmod: undefined, link: true, parents: false, exclude: ['*.md', '$X'],
    checksum: undefined, keepGitDir: false, unpack: undefined,
  });
  const add = copyCommand(instruction('ADD --link=false --unpack=FALSE --keep-git-dir --checksum=sha256:ab a /d'));
  assert.equal(add.link, false);
  assert.equal(add.unpack, false);
  assert.equal(add.keepGitDir, true);
  assert.equal(add.checksum, 'sha256:ab');
});

test('FROM --platform, present even when empty', () => {
  assert.deepEqual(fromCommand(parse('FROM --platform=$BUILDPLATFORM scratch\n').stages[0].from), { platform: '$BUILDPLATFORM' });
  assert.deepEqual(fromCommand(parse('FROM scratch\n').stages[0].from), {});
});

test('RUN: mounts in order, network and security checked with BuildKit\'s words', () => {
  assert.deepEqual(runCommand(instruction('RUN --mount=type=cache,target=/c --network=none --mount=type=tmpfs,target=/t true')), {
    mounts: ['type=cache,target=/c', 'type=tmpfs,target=/t'], network: 'none', security: 'sandbox',
  });
  assert.throws(() => runCommand(instruction('RUN --network=bridge true')), (e: unknown) => e instanceof CommandError && e.message === 'invalid network mode "bridge"');
  assert.throws(() => runCommand(instruction('RUN --security=privileged true')), /security "privileged" is not valid/);
});

test('HEALTHCHECK timings: Go durations in ns, 0 unset, at least 1ms; retries an int32 >= 0', () => {
  assert.deepEqual(healthcheckTimings(instruction('HEALTHCHECK --interval=1m30s --timeout=0s --start-period=5ms --retries=3 CMD true')), {
    Interval: 90e9, StartPeriod: 5e6, Retries: 3,
  });
  assert.throws(() => healthcheckTimings(instruction('HEALTHCHECK --interval=10us CMD true')), /Interval "interval" cannot be less than 1ms/);
  assert.throws(() => healthcheckTimings(instruction('HEALTHCHECK --retries=-1 CMD true')), /--retries cannot be negative \(-1\)/);
  assert.throws(() => healthcheckTimings(instruction('HEALTHCHECK --retries=3x CMD true')), /strconv\.ParseInt: parsing "3x": invalid syntax/);
  assert.throws(() => healthcheckTimings(instruction('HEALTHCHECK --retries=4294967296 CMD true')), /value out of range/);
});
