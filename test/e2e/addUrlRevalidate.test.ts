// ADD <url> is revalidated on every build, as BuildKit's HTTP source does it: the key of the
// step depends on the content the URL serves now, learnt from a remembered ETag (HEAD, then a
// GET with If-None-Match) or from a download. Unchanged content keeps the cache of the step and
// of everything after it (in this stage and in stages that COPY from it); changed content
// rebuilds them. The file is served from the test's "outside" network (a build's downloads are
// under the egress policy, which refuses loopback), by urlServer.mjs, which reports each request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { solve, type SolveOutcome } from './grpcClient.js';
import { useOutsideCluster } from './security/outsideCluster.js';
import { UrlServer } from './urlServerControl.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster and a network namespace)';

let server: UrlServer;

// One worker (the default): the remembered ETags are the worker's, as a buildkitd's are its own.
const env = useOutsideCluster('add-url-revalidate', !skip, {
  start: async (outside) => { server = await UrlServer.start(outside); },
  stop: () => server?.stop(),
});

/** The ADD in one stage, a COPY --from of it and a RUN in the next: all three depend on the file. */
function dockerfile(url: string, checksum?: string): string {
  return `FROM ${env.cluster.busybox.reference} AS fetch
ADD ${checksum ? `--checksum=${checksum} ` : ''}${url} /fetched
FROM ${env.cluster.busybox.reference}
COPY --from=fetch /fetched /copied
RUN cat /copied
`;
}

async function build(name: string, text: string): Promise<{ digest: string; cached: number; total: number; logs: string }> {
  const outcome: SolveOutcome = await solve(env.cluster, env.contexts.make(name, text), { platforms: ['linux/amd64'] });
  assert.equal(outcome.error?.message, undefined, outcome.logs);
  const r = outcome.result!;
  return { digest: r.digest, cached: r.verticesCached, total: r.verticesTotal, logs: outcome.logs };
}

test('unchanged content (the remembered ETag) keeps the cache; changed content rebuilds the ADD and what follows', { skip }, async () => {
  const url = `${server.base}/etag-${env.outside.nonce}.txt`;
  const text = dockerfile(url);
  await server.serve({ body: `one ${env.outside.nonce}\n`, etag: '"v1"', lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT' });
  const first = await build('etag-1', text);
  assert.match(first.logs, new RegExp(`one ${env.outside.nonce}`));
  assert.deepEqual(await server.takeRequests(), ['GET -']);

  const again = await build('etag-2', text);
  assert.deepEqual([again.cached, again.digest], [again.total, first.digest], 'every step from the cache, the same image');
  assert.deepEqual(await server.takeRequests(), ['HEAD "v1"'], 'asked again, no download');

  await server.serve({ body: `two ${env.outside.nonce}\n`, etag: '"v2"', lastModified: 'Thu, 22 Oct 2015 07:28:00 GMT' });
  const changed = await build('etag-3', text);
  assert.match(changed.logs, new RegExp(`two ${env.outside.nonce}`));
  assert.equal(changed.cached, 0, 'the ADD, the COPY --from and the RUN ran again');
  assert.notEqual(changed.digest, first.digest);
  assert.deepEqual(await server.takeRequests(), ['HEAD "v1"', 'GET "v1"']);

  // Back to the first version: both ETags are remembered, so a HEAD settles it and the first
  // build's image comes back from the cache.
  await server.serve({ body: `one ${env.outside.nonce}\n`, etag: '"v1"', lastModified: 'Wed, 21 Oct 2015 07:28:00 GMT' });
  const back = await build('etag-4', text);
  assert.deepEqual([back.cached, back.digest], [back.total, first.digest]);
  assert.deepEqual(await server.takeRequests(), ['HEAD "v2", "v1"']);
});

test('without an ETag every build downloads, and the content\'s digest decides', { skip }, async () => {
  const url = `${server.base}/plain-${env.outside.nonce}.txt`;
  const text = dockerfile(url);
  await server.serve({ body: `plain ${env.outside.nonce}\n` });
  const first = await build('plain-1', text);
  const same = await build('plain-2', text);
  assert.deepEqual([same.cached, same.digest], [same.total, first.digest]);
  await server.serve({ body: `edited ${env.outside.nonce}\n` });
  const edited = await build('plain-3', text);
  assert.equal(edited.cached, 0);
  assert.match(edited.logs, new RegExp(`edited ${env.outside.nonce}`));
  assert.deepEqual(await server.takeRequests(), ['GET -', 'GET -', 'GET -']);
});

test('with --checksum the file is pinned: a rebuild asks nothing', { skip }, async () => {
  const url = `${server.base}/pinned-${env.outside.nonce}.txt`;
  const body = `pinned ${env.outside.nonce}\n`;
  const text = dockerfile(url, `sha256:${createHash('sha256').update(body).digest('hex')}`);
  await server.serve({ body, etag: '"p1"' });
  const first = await build('pinned-1', text);
  assert.deepEqual(await server.takeRequests(), ['GET -']);
  const again = await build('pinned-2', text);
  assert.deepEqual([again.cached, again.digest], [again.total, first.digest]);
  assert.deepEqual(await server.takeRequests(), []);
});
