// Parses and plans a generated ~5,000-line Dockerfile and prints the time each phase takes.
// Run: node --conditions=source --import tsx packages/dockerfile/bench/parse.bench.ts
import { parse, planBuild, type ResolvedImage } from '@buildyard/dockerfile';

function generate(lines: number): string {
  const out: string[] = ['# syntax=docker/dockerfile:1', 'ARG BASE=alpine:3.20'];
  let stage = 0;
  while (out.length < lines) {
    out.push(`FROM \${BASE} AS s${stage}`, 'ARG TARGETARCH', 'WORKDIR /src');
    for (let i = 0; i < 40 && out.length < lines; i++) {
      out.push(`ENV V${i}=value-${i} PATH=/opt/s${stage}/bin:$PATH`);
      out.push(`RUN --mount=type=cache,target=/root/.cache set -e; \\`, `    echo "step ${i} for $TARGETARCH" \\`, `    && make -j2 target-${i}`);
      out.push(`COPY --chown=1000:1000 src/file-${i}.txt /src/dir-${i}/`);
      if (stage > 0 && i % 10 === 0) out.push(`COPY --from=s${stage - 1} /src/dir-${i} /prev/${i}`);
      out.push(`LABEL step.${i}="stage ${stage}"`);
    }
    out.push('CMD ["sh"]');
    stage++;
  }
  return out.join('\n') + '\n';
}

const text = generate(5000);
const entries = Array.from({ length: 40 }, (_, i) => ({ path: `src/file-${i}.txt`, mode: 0o100644, size: 10, digest: 'sha256:' + i.toString(16).padStart(64, '0') }));
const resolveImage = async (ref: string, platform: string): Promise<ResolvedImage> => ({
  ref: `docker.io/library/${ref}@sha256:${'a'.repeat(64)}`,
  digest: 'sha256:' + (platform.includes('arm64') ? 'b' : 'c').repeat(64),
  config: { config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] } },
});

// Warm up once so the figure reflects steady-state code, then measure.
await planBuild(parse(text), { platforms: ['linux/amd64'], buildPlatform: 'linux/amd64', resolveImage, context: { entries } });
const t0 = performance.now();
const parsed = parse(text);
const t1 = performance.now();
const plan = await planBuild(parsed, { platforms: ['linux/amd64', 'linux/arm64'], buildPlatform: 'linux/amd64', resolveImage, context: { entries } });
const t2 = performance.now();
const vertices = plan.platforms.reduce((n, p) => n + p.stages.reduce((m, s) => m + s.vertices.length, 0), 0);
console.log(`lines=${text.split('\n').length - 1} instructions=${parsed.instructions.length} stages=${parsed.stages.length} vertices(2 platforms)=${vertices}`);
console.log(`parse_ms=${(t1 - t0).toFixed(1)} plan_ms(2 platforms)=${(t2 - t1).toFixed(1)} total_ms=${(t2 - t0).toFixed(1)}`);
