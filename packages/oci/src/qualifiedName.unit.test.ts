// The qualified-name reader against @swimlane/docker-reference's own RegExp parser: the same
// answers and errors on short names (where the RegExp is quick), and an answer where it is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import dockerReference from '@swimlane/docker-reference';
import { parseQualifiedName } from './qualifiedName.js';
import { parseReference, InvalidReferenceError } from './reference.js';

const outcome = (parse: (name: string) => dockerReference.Reference, name: string) => {
  try {
    const r = parse(name);
    return { domain: r.domain, repository: r.repository, tag: r.tag, digest: r.digest };
  } catch (e) {
    return { error: (e as Error).message };
  }
};

test('parseQualifiedName answers as the library\'s RegExp does', () => {
  const hex = 'a'.repeat(64);
  // Short alphanumeric runs: the RegExp splits a run of n in 2^n ways when a match fails.
  const piece = fc.constantFrom('a', 'B', '0', '.', '_', '__', '-', '--', '/', ':', '5', 'x.io', 'lo:5', '@sha256:' + hex, '@sha512:' + hex, '@md5:' + hex, ':v1.0', '@');
  fc.assert(fc.property(fc.array(piece, { maxLength: 8 }), (parts) => {
    const name = parts.join('');
    assert.deepEqual(outcome(parseQualifiedName, name), outcome(dockerReference.parseQualifiedName, name), JSON.stringify(name));
  }), { numRuns: 5000 });
  for (const name of ['docker.io/library/busybox:1.36', `ghcr.io/o/r:v1@sha256:${hex}`, 'localhost:5000/a/b', 'my_host.com/x', 'a.'.repeat(150) + '/b', 'x/Y', '']) {
    assert.deepEqual(outcome(parseQualifiedName, name), outcome(dockerReference.parseQualifiedName, name), name);
  }
});

test('a name the RegExp took minutes over (FROM aaaa...a!) is refused at once, in one line', () => {
  for (const bad of [`${'a'.repeat(40)}!`, `x.io/${'a-'.repeat(2_000)}!`, `${'a'.repeat(30)}:${'b'.repeat(30)}@`]) {
    assert.throws(() => parseReference(bad), (e: Error) => e instanceof InvalidReferenceError && /invalid format/.test(e.message) && !e.message.includes('\n'));
  }
});
