import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parse, DockerfileError, expandWord, WordExpansionError } from './index.js';

const fragments = ['FROM a', 'FROM', 'RUN ', 'COPY ', '--from=', '--mount=', '<<EOF', '<<-"X"', 'EOF', 'X', '\\', '`', '# escape=`', '#', '"', "'", '[', ']', '["a",', '${', '}', ':-', '$', 'ENV ', 'ARG ', '=', ' ', '\t', '\n', '\r\n', 'ONBUILD ', 'HEALTHCHECK ', 'CMD', 'NONE', 'AS ', 'SHELL '];

test('parse only ever throws DockerfileError on arbitrary input', () => {
  const arb = fc.oneof(fc.string({ maxLength: 300 }), fc.array(fc.constantFrom(...fragments), { maxLength: 60 }).map((a) => a.join('')));
  fc.assert(
    fc.property(arb, (text) => {
      try {
        parse(text);
      } catch (e) {
        assert.ok(e instanceof DockerfileError, `threw ${String(e)} for ${JSON.stringify(text)}`);
        assert.ok(e.line >= 0);
      }
    }),
    { numRuns: 3000 },
  );
});

test('expandWord only throws WordExpansionError on arbitrary words', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom('$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '\\', '"', "'", 'A', 'x', '*', ' '), { maxLength: 40 }).map((a) => a.join('')), (w) => {
      try {
        expandWord(w, { A: 'value' });
      } catch (e) {
        assert.ok(e instanceof WordExpansionError, `threw ${String(e)} for ${JSON.stringify(w)}`);
      }
    }),
    { numRuns: 3000 },
  );
});

test('pathological input finishes quickly', () => {
  const start = Date.now();
  const long = 'FROM a\nRUN echo \\\n' + 'x \\\n'.repeat(100_000) + 'end\n';
  const r = parse(long);
  assert.equal(r.stages[0].instructions[0].endLine, 100_003);
  const nested = 'FROM a\nENV A=' + '${A:-'.repeat(10_000) + '}'.repeat(10_000) + '\n';
  parse(nested);
  assert.throws(() => expandWord('${A:-'.repeat(10_000) + '}'.repeat(10_000), {}), WordExpansionError);
  const manyHeredocs = 'FROM a\nRUN ' + '<<E '.repeat(2000) + '\n';
  assert.throws(() => parse(manyHeredocs), DockerfileError);
  // Quadratic work on these inputs takes minutes; the bound leaves room for a loaded machine.
  assert.ok(Date.now() - start < 30_000, `took ${Date.now() - start} ms`);
});
