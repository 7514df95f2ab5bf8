// What type=local/tar exports may unpack on the frontend. One ledger per export dir (a frontend's:
// its front doors share it) holds what the exports running there have unpacked, from each entry's
// header until the export ends (its files sent and removed), so exports running at once share
// one budget instead of each taking 90% of the free space it measured alone.
import { statfs } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { LayerLimits } from '@buildyard/snapshot';

/** The most entries one export unpacks: all of them are listed in memory before the first file goes out. */
export const MAX_EXPORT_ENTRIES = 1_000_000;
/** The share of the free space an export dir's exports may unpack to, together. */
const FREE_SHARE = 0.9;

/** The exports unpacking under one directory in this process. */
export class ExportLedger {
  /** limits.maxExportBytes: the most one export may unpack, whatever the free space; 0 for no cap. */
  maxExportBytes = 0;
  /** Bytes the running exports hold (their entries' declared sizes: a sparse file at its full size). */
  held = 0;
  /** The running exports' ceilings on `held` (see ExportBudget.ceiling). */
  readonly running = new Set<ExportBudget>();

  /** The most the running exports may hold together: the lowest of their ceilings. */
  ceiling(): number {
    let lowest = Infinity;
    for (const b of this.running) lowest = Math.min(lowest, b.ceiling);
    return lowest;
  }
}

const ledgers = new Map<string, ExportLedger>();

/** The ledger of the exports unpacking under `dir` (a frontend's export dir) in this process. */
export function exportLedger(dir: string): ExportLedger {
  const abs = resolve(dir);
  let ledger = ledgers.get(abs);
  if (!ledger) ledgers.set(abs, ledger = new ExportLedger());
  return ledger;
}

/** Why an export's unpacking was stopped: the entry that would have taken it over, and its budget then. */
interface Refusal { budget: number; byCap: boolean; othersHeld: number; others: number }

/**
 * One export's share of its ledger, as the limits applyLayer checks at each entry's header. At its
 * start it measures the free space of the disk it unpacks to: the bytes the running exports hold
 * are already out of it, and what anyone unpacks from then on must leave 10% of it free, so its
 * ceiling on the ledger is what is held now plus 90% of that free space. Its budget at each
 * entry is the lowest ceiling of the running exports less what the others hold, and at most
 * maxExportBytes. applyLayer adds each entry's size to `used.bytes`: adding goes to the ledger,
 * unless it takes the export over its budget (then applyLayer refuses the entry, unwritten).
 */
export class ExportBudget implements LayerLimits {
  readonly maxEntries = MAX_EXPORT_ENTRIES;
  readonly remedy = `an export unpacks at most ${MAX_EXPORT_ENTRIES} entries: export a smaller stage, or use type=image or type=oci (they send the layers without unpacking)`;
  readonly used: { bytes: number; entries: number };
  /** What the export's entries declare, the refused one included; `held` of it is in the ledger. */
  private counted = 0;
  private held = 0;
  private refusal?: Refusal;

  private constructor(private readonly ledger: ExportLedger, readonly ceiling: number) {
    const budget = this;
    this.used = {
      entries: 0,
      get bytes() { return budget.counted; },
      set bytes(total: number) { budget.count(total); },
    };
  }

  /** Starts an export unpacking under `dir`, counted in `ledger` until end(). */
  static async start(ledger: ExportLedger, dir: string): Promise<ExportBudget> {
    const { bavail, bsize } = await statfs(dir);
    const budget = new ExportBudget(ledger, ledger.held + Math.floor(bavail * bsize * FREE_SHARE));
    ledger.running.add(budget);
    return budget;
  }

  /** The most this export may count now: what the running exports may hold less what the others hold, within the cap. */
  get maxBytes(): number {
    const others = this.ledger.held - this.held;
    const cap = this.ledger.maxExportBytes;
    return Math.max(0, Math.min(cap > 0 ? cap : Infinity, this.ledger.ceiling() - others));
  }

  private count(total: number): void {
    this.counted = total;
    const budget = this.maxBytes;
    if (total > budget) {
      const cap = this.ledger.maxExportBytes;
      this.refusal ??= { budget, byCap: cap > 0 && budget === cap, othersHeld: this.ledger.held - this.held, others: this.ledger.running.size - 1 };
      return;
    }
    this.ledger.held += total - this.held;
    this.held = total;
  }

  /**
   * The export's one-line error when applyLayer stopped at its budget (`where`: the layer and
   * platform it was unpacking), else undefined.
   */
  error(where: string): Error | undefined {
    const r = this.refusal;
    if (!r) return undefined;
    const what = r.byCap
      ? `the export's unpacked size exceeds limits.maxExportBytes (${r.budget} bytes) at ${where} (tar bomb?)`
      : `the export's unpacked size exceeds its budget of ${r.budget} bytes at ${where} (tar bomb?): 90% of the free space of the frontend's disk${r.othersHeld > 0 ? `, less the ${r.othersHeld} bytes ${r.others} other running export${r.others === 1 ? '' : 's'} hold${r.others === 1 ? 's' : ''}` : ''}`;
    const todo = r.byCap
      ? 'export a smaller stage, use type=image or type=oci (they send the layers without unpacking), or have the operator raise limits.maxExportBytes'
      : `export a smaller stage, use type=image or type=oci (they send the layers without unpacking), or ${r.othersHeld > 0 ? 'run it again when fewer exports run, or ' : ''}have the operator free space there`;
    return new Error(`${what}; ${todo}`);
  }

  /** The export has ended, its files removed: what it held goes back to the ledger. */
  end(): void {
    this.ledger.held -= this.held;
    this.held = 0;
    this.ledger.running.delete(this);
  }
}
