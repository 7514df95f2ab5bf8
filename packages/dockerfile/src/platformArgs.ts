import { normalizePlatform, parsePlatform } from '@buildyard/graph';

/** platform.go defaultArgs: the predefined platform args and TARGETSTAGE. */
export function platformArgs(build: string, target: string, targetStage: string): Map<string, string> {
  const b = parsePlatform(build);
  const t = parsePlatform(target);
  return new Map([
    ['BUILDPLATFORM', normalizePlatform(build)],
    ['BUILDOS', b.os],
    ['BUILDOSVERSION', ''],
    ['BUILDARCH', b.architecture],
    ['BUILDVARIANT', b.variant ?? ''],
    ['TARGETPLATFORM', normalizePlatform(target)],
    ['TARGETOS', t.os],
    ['TARGETOSVERSION', ''],
    ['TARGETARCH', t.architecture],
    ['TARGETVARIANT', t.variant ?? ''],
    ['TARGETSTAGE', targetStage || 'default'],
  ]);
}
