import type { BuildyardMetrics } from '@buildyard/telemetry';
import type { DashboardState } from './DashboardState.js';
import { platformTotals } from '@buildyard/scheduler';
import type { PlatformTenantRow, QueueSample, QueueView } from './types.js';

/**
 * Keeps the last hour of queue depth per queue IN MEMORY of this dashboard process, sampled
 * every `intervalMs` (default 5 s, 720 points per queue). A restarted dashboard starts with an
 * empty chart; nothing is written to Redis. Each sample also updates the queue-depth gauge and
 * observes the queue wait of every stage job taken since the last sample. The dashboard does
 * this (not buildyardd) because it already reads BullMQ on a timer and runs once per deployment,
 * while frontends scale out and would each report the same queues.
 */
export class QueueSampler {
  private readonly series = new Map<string, QueueSample[]>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  readonly intervalMs: number;
  readonly windowMs: number;

  constructor(private readonly state: DashboardState, opts: { intervalMs?: number; windowMs?: number; metrics?: BuildyardMetrics } = {}) {
    this.intervalMs = opts.intervalMs ?? 5000;
    this.windowMs = opts.windowMs ?? 3_600_000;
    this.metrics = opts.metrics;
  }

  private readonly metrics: BuildyardMetrics | undefined;
  /** Stage-job takes already observed, by key, with their start time (pruned after the window). */
  private readonly observedWaits = new Map<string, number>();
  private lastWaitScanMs = 0;

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** Takes one sample now (also used by tests); overlapping calls share one read. */
  sample(): Promise<void> {
    this.running ??= this.take().finally(() => { this.running = undefined; });
    return this.running;
  }

  private async take(): Promise<void> {
    let queues: QueueView[];
    try {
      queues = await this.state.listQueues();
    } catch {
      return; // Redis unavailable: a gap in the chart, the next tick retries
    }
    this.record(queues, Date.now());
    if (this.metrics) {
      await this.state.platformQueues().then((rows) => this.recordWaiting(rows)).catch(() => undefined); // a gap, as above
      await this.observeWaits().catch(() => undefined); // a gap; the next tick looks further back
    }
  }

  /**
   * The autoscaling signal: runnable stages per platform, tenant and what holds them, and the
   * oldest wait per platform. Label sets of stages no longer waiting are dropped (reset), and
   * every platform a worker serves reports 0 rather than going missing, so a scaler sees zero.
   */
  recordWaiting(rows: PlatformTenantRow[], platforms: string[] = this.platforms): void {
    const m = this.metrics!;
    m.stagesWaiting.reset();
    m.stagesRunning.reset();
    m.oldestWait.reset();
    for (const r of rows) {
      for (const [reason, n] of Object.entries(r.held)) m.stagesWaiting.set({ platform: r.platform, tenant: r.tenant, reason }, n);
      if (r.running > 0) m.stagesRunning.set({ platform: r.platform, tenant: r.tenant }, r.running);
    }
    const totals = platformTotals(rows);
    for (const p of new Set([...platforms, ...totals.map((t) => t.platform)])) {
      m.oldestWait.set({ platform: p }, (totals.find((t) => t.platform === p)?.oldestWaitMs ?? 0) / 1000);
    }
  }

  /** Platforms of the queues seen last (so an idle platform's oldest wait reads 0). */
  private platforms: string[] = [];

  private async observeWaits(): Promise<void> {
    const now = Date.now();
    // Look back past the previous scan so jobs finished between two samples are not missed.
    const since = this.lastWaitScanMs === 0 ? now - this.windowMs : this.lastWaitScanMs - 2 * this.intervalMs;
    for (const w of await this.state.stageWaits(since)) {
      if (this.observedWaits.has(w.key)) continue;
      this.observedWaits.set(w.key, w.startedMs);
      this.metrics!.queueWait.observe({ platform: w.platform, emulated: w.emulated ? 'true' : 'false' }, w.waitMs / 1000);
    }
    for (const [key, t] of this.observedWaits) if (t < now - this.windowMs) this.observedWaits.delete(key);
    this.lastWaitScanMs = now;
  }

  record(queues: QueueView[], t: number): void {
    for (const q of queues) {
      const list = this.series.get(q.name) ?? [];
      list.push({ t, waiting: q.waiting, active: q.active, throughputPerMin: q.throughputPerMin });
      while (list.length > 0 && list[0].t < t - this.windowMs) list.shift();
      this.series.set(q.name, list);
      if (q.kind !== 'worker' && !this.platforms.includes(q.platform)) this.platforms.push(q.platform);
      if (this.metrics && q.kind !== 'worker') {
        this.metrics.queueDepth.set({ platform: q.platform, class: q.kind, state: 'waiting' }, q.waiting);
        this.metrics.queueDepth.set({ platform: q.platform, class: q.kind, state: 'active' }, q.active);
      }
    }
  }

  history(name: string): QueueSample[] {
    return [...(this.series.get(name) ?? [])];
  }

  /** Live queue views with their sampled history attached. */
  async queues(): Promise<QueueView[]> {
    const queues = await this.state.listQueues();
    return queues.map((q) => ({ ...q, history: this.history(q.name) }));
  }
}
