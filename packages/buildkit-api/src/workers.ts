import type { WorkerStatus } from '@buildyard/scheduler';
import { parsePlatform } from '@buildyard/graph';
import { buildkitTypes, llb } from '@buildyard/proto';

/**
 * "linux/arm/v7" as BuildKit's Platform message, normalised as BuildKit reports its workers'
 * platforms (containerd's Normalize). Unknown os/arch are passed through: the list describes
 * what workers advertise, it does not judge it.
 */
export function platformMessage(platform: string): llb.Platform {
  const p = parsePlatform(platform, { allowUnknown: true });
  return llb.Platform.fromPartial({ OS: p.os, Architecture: p.architecture, Variant: p.variant ?? '' });
}

/**
 * A fleet worker as BuildKit describes its workers: native platforms first, then the ones it
 * runs under emulation (buildx lists them in this order), and labels saying which is which.
 */
export function workerRecord(w: WorkerStatus, version: string): buildkitTypes.WorkerRecord {
  return buildkitTypes.WorkerRecord.fromPartial({
    ID: w.id,
    Labels: {
      'org.mobyproject.buildkit.worker.executor': 'oci',
      'org.mobyproject.buildkit.worker.snapshotter': 'overlayfs',
      'org.mobyproject.buildkit.worker.hostname': w.id,
      'dev.buildyard.worker.native-platforms': w.nativePlatforms.join(','),
      'dev.buildyard.worker.emulated-platforms': w.emulatedPlatforms.join(','),
      'dev.buildyard.worker.capacity': String(w.capacity),
      ...(w.draining ? { 'dev.buildyard.worker.draining': 'true' } : {}),
    },
    platforms: [...w.nativePlatforms, ...w.emulatedPlatforms.filter((p) => !w.nativePlatforms.includes(p))].map(platformMessage),
    BuildkitVersion: { package: 'github.com/buildyard/buildyard', version, revision: w.version },
  });
}
