import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { parse, planBuild, type ResolvedImage } from '@buildyard/dockerfile';
import { ProgressWriter, readProgress } from '@buildyard/progress';
import { startRedis } from '@buildyard/testkit';
import { announceBaseImages } from './baseImageVertices.js';

// One multi-arch image: the resolver answers each platform's manifest, as the registry would.
const resolveImage = async (ref: string, platform: string): Promise<ResolvedImage> => {
  const digest = `sha256:${(platform.endsWith('arm64') ? 'b' : 'a').repeat(64)}`;
  return { ref: `127.0.0.1:5000/library/${ref}@sha256:${'f'.repeat(64)}`, digest, config: { config: {} } };
};

test('a FROM --platform=$BUILDPLATFORM stage shows one FROM vertex, as the platform it pulls, in a two-platform build', async () => {
  const plan = await planBuild(parse([
    'FROM --platform=$BUILDPLATFORM busybox AS tool', 'RUN uname -m > /t',
    'FROM busybox', 'COPY --from=tool /t /t', '',
  ].join('\n')), { platforms: ['linux/amd64', 'linux/arm64'], buildPlatform: 'linux/amd64', resolveImage });
  const service = await startRedis();
  const redis = new Redis(service.url, { maxRetriesPerRequest: 3 });
  try {
    const progress = new ProgressWriter(redis, 'b-from');
    await announceBaseImages(plan, progress, 'b-from');
    await progress.close();
    const shown: string[] = [];
    for await (const e of readProgress(redis, 'b-from', { fromStart: true })) {
      if (e.type === 'vertex.started') shown.push(`${e.vertex.name.replace(/ FROM .*/, '')} ${e.vertex.platform}`);
    }
    // The tool stage runs as linux/amd64 in both platforms' builds (BuildKit merges the two
    // identical source ops); the final stage's base is pulled once per platform, and for
    // amd64 it is the very image the tool stage already announced.
    assert.deepEqual(shown, ['[tool 1/2] linux/amd64', '[stage-1 1/2] linux/arm64']);
  } finally {
    redis.disconnect();
    await service.stop();
  }
});
