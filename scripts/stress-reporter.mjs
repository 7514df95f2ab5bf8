// node:test reporter for scripts/stress-tests.mjs: one JSON line per finished top-level test
// (file, name, outcome, and the first line of a failure), so the stress script counts results
// without parsing TAP's free text.
export default async function* stressReporter(source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const { data } = event;
    if (data.nesting !== 0) continue;
    const outcome = event.type === 'test:fail' ? 'fail' : data.skip !== undefined || data.todo !== undefined ? 'skip' : 'pass';
    const error = data.details?.error;
    const cause = error?.cause ?? error;
    const message = outcome === 'fail' ? String(cause?.message ?? cause ?? 'failed').split('\n')[0].slice(0, 300) : undefined;
    yield `${JSON.stringify({ file: data.file ?? '', name: data.name, outcome, message })}\n`;
  }
}
