import type { ExportStep } from '@buildyard/control';
import { buildkit } from '@buildyard/proto';
import { internalDigest, vertexUpdate } from '@buildyard/progress';

/** BuildKit's exporter vertex names (exporter Name() in moby/buildkit's exporter/*). */
export function exporterVertexName(type: string): string | undefined {
  if (type === 'image' || type === 'registry') return 'exporting to image';
  if (type === 'oci' || type === 'docker') return `exporting to ${type} image format`;
  return undefined;
}

/**
 * BuildKit's export vertex: "exporting to image" with one status per phase ("exporting layers",
 * "exporting manifest sha256:…", "pushing layers", "pushing manifest for …"), each timed as it
 * runs, so buildctl's and buildx's progress show the export as against buildkitd. The vertex
 * opens with the first phase and stays open until `complete`.
 */
export class ExportVertex {
  readonly digest: string;
  private started?: Date;
  private completed = false;
  private error = '';

  /** `ready` resolves once the build's own events so far are relayed: the export follows its steps. */
  constructor(ref: string, readonly name: string, private readonly push: (s: buildkit.StatusResponse) => void, private readonly ready: () => Promise<void>) {
    this.digest = internalDigest(ref, name);
  }

  readonly step: ExportStep = async (name, fn) => {
    if (!this.started) {
      await this.ready();
      this.started = new Date();
      this.push(vertexUpdate({ digest: this.digest, name: this.name, started: this.started }));
    }
    const started = new Date();
    const status = (completed?: Date) => buildkit.StatusResponse.fromPartial({
      statuses: [{ ID: name, vertex: this.digest, name, started, timestamp: completed ?? started, completed }],
    });
    this.push(status());
    try {
      return await fn();
    } catch (err) {
      this.error ||= (err as Error).message;
      throw err;
    } finally {
      this.push(status(new Date()));
    }
  };

  /** Ends the vertex (with the error of a phase that failed); nothing if no phase ran. */
  complete(): void {
    if (!this.started || this.completed) return;
    this.completed = true;
    this.push(vertexUpdate({ digest: this.digest, name: this.name, started: this.started, completed: new Date(), error: this.error }));
  }
}

const streamIdBefore = (a: string, b: string): boolean => {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am < bm || (am === bm && as < bs);
};

/** How far a build's progress stream has been relayed, for updates that must come after what it holds. */
export class StreamCursor {
  private last = '0-0';
  private ended = false;
  private waiters: Array<{ id: string; wake: () => void }> = [];

  advance(id: string): void {
    this.last = id;
    this.waiters = this.waiters.filter((w) => (streamIdBefore(this.last, w.id) ? true : (w.wake(), false)));
  }

  /** The relay stopped: nobody waits for it any longer. */
  end(): void {
    this.ended = true;
    for (const w of this.waiters) w.wake();
    this.waiters = [];
  }

  /** Resolves when the event with stream id `id` has been relayed (or the relay ended). */
  reach(id: string): Promise<void> {
    if (this.ended || !streamIdBefore(this.last, id)) return Promise.resolve();
    return new Promise((wake) => this.waiters.push({ id, wake }));
  }
}
