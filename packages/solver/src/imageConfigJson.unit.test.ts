import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageConfig, ImageConfigFile } from '@buildyard/graph';
import { goTime, imageConfigJson } from './imageConfigJson.js';

test('writes the config as Go\'s encoding/json writes BuildKit\'s: sorted top-level keys, struct order, omitempty, sorted maps, HTML-safe escapes', () => {
  // A base image committed by the legacy builder carries fields Docker's image spec does not define.
  const legacy = { Hostname: '', Domainname: '', AttachStdin: false, Image: 'sha256:abc', OnBuild: null } as unknown as ImageConfig;
  const file: ImageConfigFile = {
    os: 'linux', architecture: 'arm64', variant: 'v8', created: '2020-09-13T12:26:40.000Z',
    config: {
      ...legacy, Shell: ['/bin/sh', '-c'], Labels: { 'org.x': 'y', 1: 'one', b: '<&>' }, Cmd: [], Entrypoint: null, User: '',
      Healthcheck: { Retries: 3, Test: ['CMD', 'true'], Interval: 5_000_000_000 }, ExposedPorts: { '80/tcp': {}, '443/tcp': {} }, Env: ['A=1'],
    },
    rootfs: { type: 'layers', diff_ids: [] },
    history: [{ empty_layer: true, comment: 'c', created_by: 'ENV A=1', created: '2020-09-13T12:26:40.120Z', author: 'me' }],
  };
  assert.equal(imageConfigJson(file).toString(), '{"architecture":"arm64","config":{"ExposedPorts":{"443/tcp":{},"80/tcp":{}},"Env":["A=1"],'
    + '"Labels":{"1":"one","b":"\\u003c\\u0026\\u003e","org.x":"y"},"Healthcheck":{"Test":["CMD","true"],"Interval":5000000000,"Retries":3},"Shell":["/bin/sh","-c"]},'
    + '"created":"2020-09-13T12:26:40Z","history":[{"created":"2020-09-13T12:26:40.12Z","created_by":"ENV A=1","author":"me","comment":"c","empty_layer":true}],'
    + '"os":"linux","rootfs":{"type":"layers","diff_ids":null},"variant":"v8"}');
});

test('times lose only trailing zeros of their fraction, any offset kept', () => {
  assert.equal(goTime('2020-01-01T00:00:00.000Z'), '2020-01-01T00:00:00Z');
  assert.equal(goTime('2020-01-01T00:00:00.100200300Z'), '2020-01-01T00:00:00.1002003Z');
  assert.equal(goTime('2020-01-01T02:00:00.50+02:00'), '2020-01-01T02:00:00.5+02:00');
  assert.equal(goTime('2020-01-01T00:00:00Z'), '2020-01-01T00:00:00Z');
  // A base image's time is anyone's string: a megabyte of zeros is read once (a backtracking regexp was quadratic).
  assert.equal(goTime(`2020-01-01T00:00:00.${'0'.repeat(1_000_000)}1Z`), `2020-01-01T00:00:00.${'0'.repeat(1_000_000)}1Z`);
  assert.equal(goTime(`2020-01-01T00:00:00.1${'0'.repeat(1_000_000)}Z`), '2020-01-01T00:00:00.1Z');
  assert.equal(goTime(`x.${'0'.repeat(1_000_000)}`), `x.${'0'.repeat(1_000_000)}`);
});
