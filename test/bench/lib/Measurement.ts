// One row of the benchmark table: Buildyard's number, the peer's number measured in the same
// run on the same input, their ratio, and the target the issue set for it.

export interface Measurement {
  benchmark: string;
  metric: string;
  unit: string;
  buildyard: number;
  /** The peer's number; absent for rows that only have a target (scheduler, memory). */
  peer?: number;
  peerName?: string;
  /** buildyard / peer (or buildyard / target when there is no peer). */
  ratio?: number;
  /** Human-readable target, e.g. "<= 0.8x" or ">= 200/s". */
  target?: string;
  /** Whether the target was met; undefined when the row is reported only. */
  met?: boolean;
  note?: string;
}

export interface BenchContext {
  quick: boolean;
  /** Progress lines go to stderr so stdout holds only the table. */
  log(message: string): void;
}

export interface Benchmark {
  name: string;
  title: string;
  run(ctx: BenchContext): Promise<Measurement[]>;
}

/** A row comparing a "lower is better" quantity (time, bytes) against a peer. */
export function lowerIsBetter(m: Omit<Measurement, 'ratio' | 'met'> & { peer: number }, maxRatio?: number): Measurement {
  const ratio = m.buildyard / m.peer;
  return { ...m, ratio, target: maxRatio === undefined ? m.target : m.target ?? `<= ${maxRatio}x`, met: maxRatio === undefined ? undefined : ratio <= maxRatio };
}

/** A row comparing a "higher is better" quantity (throughput, speed-up) against a peer. */
export function higherIsBetter(m: Omit<Measurement, 'ratio' | 'met'> & { peer: number }, minRatio?: number): Measurement {
  const ratio = m.buildyard / m.peer;
  return { ...m, ratio, target: minRatio === undefined ? m.target : m.target ?? `>= ${minRatio}x`, met: minRatio === undefined ? undefined : ratio >= minRatio };
}
