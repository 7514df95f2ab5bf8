// node:test reporter for scripts/stress-tests.mjs: one JSON line per finished top-level test
// (file, name, outcome, and the first line of a failure), so the stress script counts results
// without parsing TAP's free text.
// A file that scripts/test-guard.mjs stopped fails as a whole ("test failed"); its guard line on
// stderr says why, so that line is its message.
export default async function* stressReporter(source) {
  const guardLines = new Map();
  for await (const event of source) {
    if (event.type === 'test:stderr' && /^test-guard: /.test(event.data.message ?? '') && !guardLines.has(event.data.file)) {
      guardLines.set(event.data.file, event.data.message.trim().split('\n')[0]);
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (data.nesting !== 0) continue;
    const outcome = event.type === 'test:fail' ? 'fail' : data.skip !== undefined || data.todo !== undefined ? 'skip' : 'pass';
    const error = data.details?.error;
    const cause = error?.cause ?? error;
    const guarded = outcome === 'fail' && data.name === data.file ? guardLines.get(data.file) : undefined;
    const message = outcome === 'fail' ? (guarded ?? String(cause?.message ?? cause ?? 'failed')).split('\n')[0].slice(0, 300) : undefined;
    yield `${JSON.stringify({ file: data.file ?? '', name: data.name, outcome, message })}\n`;
  }
}
