// A build outlives the frontend that accepted it (another frontend takes its coordination over),
// so a Solve stream cut by a frontend restart is not the end of the build: the client attaches
// to it again by id at the same builder address and continues from where its stream stopped.
import { status } from '@grpc/grpc-js';
import type { SolveEvent } from '@buildyard/proto';
import { isServiceError } from './connectBuilder.js';

/** Codes a cut connection gives (a frontend stopping or killed); anything else is an answer. */
const CUT = new Set<number>([status.UNAVAILABLE, status.CANCELLED, status.INTERNAL]);

export interface ReattachOptions {
  /** Aborted by the user: no re-attach. */
  signal?: AbortSignal;
  /** How long re-attaching may fail in a row before the cut is reported (default 300 s: a restarting frontend may take a while). */
  retryForMs?: number;
  /** Told of every re-attach attempt (the CLI says so on stderr). */
  onReattach?: (buildId: string, attempt: number, err: unknown) => void;
  /** Pause between attempts (default 500 ms): the builder is restarting. */
  pauseMs?: number;
  /** The name the client gave its build: a stream cut before the build was accepted attaches by it. */
  buildId?: string;
  /**
   * Sends the Solve again under a new name, for a stream cut before acceptance whose build the
   * builder does not know (the frontend went before recording it).
   */
  resubmit?: () => { buildId: string; stream: AsyncIterable<SolveEvent> };
}

/** How often a build the builder never recorded is sent again before the cut is reported. */
const MAX_RESUBMITS = 2;

/**
 * Yields the build's events from `first`; when the stream is cut after the build was accepted,
 * attaches again (`attach(buildId)` replays the build's progress from its start) and skips the
 * events already yielded. The progress stream is append-only and Attach relays it event for
 * event, so a count of the events seen is the position. Exported files are not counted: they
 * come only on the Solve stream. A stream cut by UNAVAILABLE before acceptance (the frontend went
 * while taking the request) attaches by the client's own build name when it has one; a builder
 * that never recorded the build gets the Solve again (`resubmit`).
 */
export async function* reattaching(first: AsyncIterable<SolveEvent>, attach: (buildId: string) => AsyncIterable<SolveEvent>, o: ReattachOptions = {}): AsyncGenerator<SolveEvent> {
  let seen = 0;
  let buildId = o.buildId ?? '';
  let accepted = false;
  let stream = first;
  let solving = true; // `stream` is a Solve (the first or a resubmitted one): replays nothing already seen
  let resubmits = 0;
  let attempt = 0;
  let failingSince = 0;
  for (;;) {
    let skip = solving ? 0 : seen;
    try {
      for await (const ev of stream) {
        if (ev.file) { yield ev; continue; }
        if (skip > 0) { skip--; continue; }
        seen++;
        attempt = 0;
        failingSince = 0;
        if (ev.accepted) { buildId = ev.accepted.buildId; accepted = true; }
        yield ev;
      }
      return;
    } catch (err) {
      if (o.signal?.aborted || !buildId || !isServiceError(err)) throw err;
      const unknownBuild = !accepted && !solving && err.code === status.NOT_FOUND;
      if (unknownBuild && o.resubmit && resubmits < MAX_RESUBMITS) {
        resubmits++;
        ({ buildId, stream } = o.resubmit());
        solving = true;
        continue;
      }
      const cut = accepted ? CUT.has(err.code) : err.code === status.UNAVAILABLE;
      if (!cut) throw err;
      failingSince ||= Date.now();
      if (Date.now() - failingSince > (o.retryForMs ?? 300_000)) throw err;
      o.onReattach?.(buildId, ++attempt, err);
      // The first attempt goes at once (another frontend may be up); later ones wait for the restart.
      if (attempt > 1) await pause(o.pauseMs ?? 500, o.signal);
      if (o.signal?.aborted) throw err;
      stream = attach(buildId);
      solving = false;
    }
  }
}

function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() { clearTimeout(timer); signal?.removeEventListener('abort', done); resolve(); }
    signal?.addEventListener('abort', done, { once: true });
  });
}
