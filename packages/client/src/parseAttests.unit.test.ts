import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseAttestFlags } from './parseAttests.js';
import { ExitCode } from './ClientError.js';

const min = { type: 'provenance', attrs: { mode: 'min', 'inline-only': 'true' } };

test('buildx\'s default: provenance mode=min,inline-only=true unless provenance is named or BUILDX_NO_DEFAULT_ATTESTATIONS is true', () => {
  assert.deepEqual(parseAttestFlags({}), [min]);
  assert.deepEqual(parseAttestFlags({}, { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' }), []);
  assert.deepEqual(parseAttestFlags({}, { BUILDX_NO_DEFAULT_ATTESTATIONS: 'false' }), [min]);
  assert.deepEqual(parseAttestFlags({ provenance: 'false' }), [], '--provenance=false: nothing, not even the default');
  assert.deepEqual(parseAttestFlags({ sbom: 'true' }), [{ type: 'sbom', attrs: {} }, min]);
});

test('--provenance/--sbom are --attest shorthands; a later flag of one type replaces the earlier', () => {
  assert.deepEqual(parseAttestFlags({ provenance: 'true' }), [{ type: 'provenance', attrs: {} }]);
  assert.deepEqual(parseAttestFlags({ provenance: 'mode=max' }), [{ type: 'provenance', attrs: { mode: 'max' } }]);
  assert.deepEqual(parseAttestFlags({ attest: ['type=provenance,mode=max', 'type=sbom'] }), [{ type: 'provenance', attrs: { mode: 'max' } }, { type: 'sbom', attrs: {} }]);
  assert.deepEqual(parseAttestFlags({ attest: ['type=provenance,mode=max'], provenance: 'false' }), []);
  assert.deepEqual(parseAttestFlags({ attest: ['type=sbom,disabled=true'], sbom: undefined }, { BUILDX_NO_DEFAULT_ATTESTATIONS: '1' }), []);
});

test('bad attestation flags exit 2 with one line, before anything is sent', () => {
  const cases: Array<[Parameters<typeof parseAttestFlags>[0], RegExp]> = [
    [{ attest: ['mode=max'] }, /--attest "mode=max": attestation type not specified/],
    [{ attest: ['type=vex'] }, /unknown attestation type "vex"/],
    [{ provenance: 'mode=full' }, /--provenance "type=provenance,mode=full": mode=full; use mode=min or mode=max/],
    [{ attest: ['type=sbom,generator=img'] }, /SBOM generator images are not supported/],
    [{ attest: ['type=sbom,disabled=maybe'] }, /disabled=maybe is not a boolean/],
  ];
  for (const [flags, re] of cases) {
    assert.throws(() => parseAttestFlags(flags), (err: Error & { exitCode?: number; code?: number }) => {
      assert.match(err.message, re);
      assert.equal(err.message.split('\n').length, 1);
      return true;
    });
  }
  assert.throws(() => parseAttestFlags({}, { BUILDX_NO_DEFAULT_ATTESTATIONS: 'perhaps' }), /BUILDX_NO_DEFAULT_ATTESTATIONS="perhaps" is not a boolean/);
});

test('parseBuildFlags carries the attestations into the build options', async () => {
  const { parseBuildFlags } = await import('./parseBuildFlags.js');
  const opts = parseBuildFlags({ sbom: 'true', provenance: 'mode=max' }, { env: {}, cwd: '/' });
  assert.deepEqual(opts.attests, [{ type: 'provenance', attrs: { mode: 'max' } }, { type: 'sbom', attrs: {} }]);
  try { parseBuildFlags({ attest: ['type=nope'] }, { env: {}, cwd: '/' }); assert.fail('no error'); } catch (err) { assert.equal((err as { exitCode: number }).exitCode, ExitCode.Usage); }
});

test('index: annotations of one platform: accepted while attestations make an index, refused with --provenance=false', async () => {
  const { parseBuildFlags } = await import('./parseBuildFlags.js');
  const opts = parseBuildFlags({ platform: ['linux/amd64'], annotation: ['index:k=v'], output: ['type=oci,dest=x.tar'] }, { env: {}, cwd: '/' });
  assert.equal(opts.outputs[0].attrs['annotation-index.k'], 'v');
  assert.throws(() => parseBuildFlags({ platform: ['linux/amd64'], annotation: ['index:k=v'], provenance: 'false' }, { env: {}, cwd: '/' }), /a single-platform build pushes a manifest/);
});
