import type { WorkerStatus } from '@buildyard/scheduler';
import { buildkitTypes, llb } from '@buildyard/proto';

/** "linux/arm64/v8" as BuildKit's Platform message. */
export function platformMessage(platform: string): llb.Platform {
  const [os = '', arch = '', variant = ''] = platform.split('/');
  return llb.Platform.fromPartial({ OS: os, Architecture: arch, Variant: variant });
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
