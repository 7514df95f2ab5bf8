// What waits, per platform and tenant, and why: the honest queue view (issue 19). BullMQ's
// queues only hold stages already given to workers; a stage held back by its tenant's limit
// (state `ready`), or waiting for an identical stage of another build (`deduped`), is in no
// BullMQ queue at all. This reads the scheduler's own stage states (getBuild) and events, so
// it counts every stage that could run now but does not, whatever holds it. Read-only and
// pure: the caller gathers the builds and the live workers.
import { describeQueueName } from '@buildyard/contracts';
import type { BuildEvent, BuildState, StageState, WorkerStatus } from './types.js';

/** Why a runnable stage is not running. */
export type HoldReason =
  /** `ready`: its tenant already runs as many stages as its limit allows. */
  | 'tenant-limit'
  /** Being handed to a queue right now (between claim and placement). */
  | 'dispatching'
  /** In a platform queue and no live worker runs that platform. */
  | 'no-worker'
  /** In a platform queue, every slot of the workers that run it is taken. */
  | 'workers-busy'
  /** In one worker's own queue (it holds the inputs) and that worker is busy. */
  | 'worker-busy'
  /** In a queue whose workers have a free slot (one should take it at once). */
  | 'queued'
  /** Waits for an identical stage of another build, whose result it reuses. */
  | 'dedupe';

export interface WaitingStage {
  buildId: string;
  tenant: string;
  platform: string;
  stageId: string;
  /** When it could first have run: its last dependency finished, or the build was submitted. */
  sinceMs: number;
  reason: HoldReason;
  /** One line for people, e.g. "tenant a runs 1 of 1 allowed stages". */
  why: string;
}

export interface PlatformTenantQueue {
  platform: string;
  tenant: string;
  /** Runnable stages not running, whatever holds them (sum of `held`). */
  waiting: number;
  held: Partial<Record<HoldReason, number>>;
  /** Distinct `why` lines of the waiting stages, most common first. */
  why: string[];
  running: number;
  /** Waiting time of the stage that has waited longest; null when none waits. */
  oldestWaitMs: number | null;
  /** Builds of this tenant that failed on this platform (in the window the caller read). */
  failedBuilds: number;
  /** Stages of this tenant and platform that failed (in the same window). */
  failedStages: number;
}

export interface QueueViewInput {
  /** Builds the scheduler still runs, with their events so far. */
  running: Array<{ state: BuildState; events: BuildEvent[] }>;
  /** Builds that ended in the window of the failure counts (failed, cancelled or done). */
  finished?: BuildState[];
  workers: WorkerStatus[];
  /** The deployment's default tenant limit (limits.tenantConcurrency), for the `why` lines. */
  tenantLimit?: number | 'fleet';
  now: number;
}

const ACTIVE = new Set<StageState['status']>(['dispatching', 'queued', 'running']);

/** When each stage of the build became runnable: its dependencies' completion, else the build's start. */
function runnableSince(state: BuildState, events: BuildEvent[]): Map<string, number> {
  const key = (platform: string, stageId: string) => `${platform}\n${stageId}`;
  const completed = new Map<string, number>();
  const requeued = new Map<string, number>();
  for (const ev of events) {
    if (!('stageId' in ev)) continue;
    if (ev.type === 'stage-completed') completed.set(key(ev.platform, ev.stageId), ev.at);
    // A stage queued again after it had started (its worker died) waits from then.
    if (ev.type === 'stage-started') requeued.set(key(ev.platform, ev.stageId), -1);
    if (ev.type === 'stage-queued' && requeued.has(key(ev.platform, ev.stageId))) requeued.set(key(ev.platform, ev.stageId), ev.at);
  }
  const out = new Map<string, number>();
  for (const s of state.stages) {
    let since = state.createdAt;
    for (const d of s.dependsOn) since = Math.max(since, completed.get(key(s.platform, d)) ?? since);
    const again = requeued.get(key(s.platform, s.stageId)) ?? -1;
    out.set(key(s.platform, s.stageId), Math.max(since, again));
  }
  return out;
}

/** Free slots and live workers of each platform queue and worker queue. */
function capacity(workers: WorkerStatus[]) {
  const live = workers.filter((w) => !w.draining);
  // A platform queue is served by the workers running that platform in its class (native or emulated).
  const serving = (platform: string, cls: 'native' | 'emulated' | undefined) => live.filter((w) => (cls !== 'emulated' && w.nativePlatforms.includes(platform)) || (cls !== 'native' && w.emulatedPlatforms.includes(platform)));
  return {
    platform(platform: string, cls: 'native' | 'emulated' | undefined): { workers: number; slots: number; free: number } {
      const ws = serving(platform, cls);
      const slots = ws.reduce((n, w) => n + w.capacity, 0);
      return { workers: ws.length, slots, free: ws.reduce((n, w) => n + Math.max(0, w.capacity - w.running), 0) };
    },
    worker(id: string): WorkerStatus | undefined {
      return workers.find((w) => w.id === id);
    },
  };
}

/** The platform whose workers a stage needs: where it executes, not the target it belongs to. */
const runsOn = (s: StageState): string => s.runPlatform ?? s.platform;

/** Every runnable stage that is not running, with what holds it. */
export function waitingStages(input: QueueViewInput): WaitingStage[] {
  const slots = capacity(input.workers);
  // Stages a tenant holds a slot with (dispatching, queued or running), for the tenant-limit line.
  const activeOf = new Map<string, number>();
  for (const { state } of input.running) {
    for (const s of state.stages) if (ACTIVE.has(s.status)) activeOf.set(state.tenant, (activeOf.get(state.tenant) ?? 0) + 1);
  }
  const limit = input.tenantLimit === undefined ? 'its limit' : input.tenantLimit === 'fleet' ? 'its share of the fleet' : `a limit of ${input.tenantLimit}`;
  const out: WaitingStage[] = [];
  for (const { state, events } of input.running) {
    if (state.status !== 'running') continue;
    const since = runnableSince(state, events);
    for (const s of state.stages) {
      // Rows stay per target platform (the build's); what holds a queued stage is read from the
      // workers of the platform it executes on (runsOn).
      const base = { buildId: state.buildId, tenant: state.tenant, platform: s.platform, stageId: s.stageId, sinceMs: since.get(`${s.platform}\n${s.stageId}`) ?? state.createdAt };
      const held = (reason: HoldReason, why: string) => out.push({ ...base, reason, why });
      switch (s.status) {
        case 'ready':
          held('tenant-limit', `held by the tenant limit: tenant ${state.tenant} runs ${activeOf.get(state.tenant) ?? 0} stages (${limit})`);
          break;
        case 'dispatching':
          held('dispatching', 'being placed on a queue');
          break;
        case 'deduped':
          held('dedupe', `waits for the identical stage ${s.dedupedFrom ?? 'of another build'}`);
          break;
        case 'queued': {
          const q = s.queue ? describeQueueName(s.queue) : undefined;
          if (q?.kind === 'worker') {
            const w = slots.worker(q.workerId);
            if (!w) held('no-worker', `placed on worker ${q.workerId}, which is gone (the scheduler re-homes it)`);
            else if (w.running >= w.capacity || w.draining) held('worker-busy', `placed on worker ${w.id} (it holds the inputs), busy ${w.running}/${w.capacity}`);
            else held('queued', `queued on worker ${w.id}, which has a free slot`);
            break;
          }
          const cls = q?.kind;
          const what = cls ? `${runsOn(s)} (${cls})` : runsOn(s);
          const c = slots.platform(runsOn(s), cls);
          if (c.workers === 0) held('no-worker', `no live worker runs ${what}`);
          else if (c.free === 0) held('workers-busy', `all ${c.slots} worker slots for ${what} are busy`);
          else held('queued', `queued for ${what}: ${c.free} of ${c.slots} worker slots free`);
          break;
        }
        default:
          break; // pending (dependencies not done), running, or finished: not waiting for a resource
      }
    }
  }
  return out;
}

/** Per platform and tenant: waiting (with what holds it), running, oldest wait, failed builds and stages. */
export function queueView(input: QueueViewInput): PlatformTenantQueue[] {
  const rows = new Map<string, PlatformTenantQueue & { whyCount: Map<string, number> }>();
  const row = (platform: string, tenant: string) => {
    const k = `${platform}\n${tenant}`;
    let r = rows.get(k);
    if (!r) {
      r = { platform, tenant, waiting: 0, held: {}, why: [], running: 0, oldestWaitMs: null, failedBuilds: 0, failedStages: 0, whyCount: new Map() };
      rows.set(k, r);
    }
    return r;
  };
  for (const w of waitingStages(input)) {
    const r = row(w.platform, w.tenant);
    r.waiting += 1;
    r.held[w.reason] = (r.held[w.reason] ?? 0) + 1;
    r.whyCount.set(w.why, (r.whyCount.get(w.why) ?? 0) + 1);
    const waited = Math.max(0, input.now - w.sinceMs);
    r.oldestWaitMs = r.oldestWaitMs === null ? waited : Math.max(r.oldestWaitMs, waited);
  }
  for (const { state } of input.running) {
    if (state.status !== 'running') continue;
    for (const s of state.stages) if (s.status === 'running') row(s.platform, state.tenant).running += 1;
  }
  for (const state of [...input.running.map((b) => b.state), ...(input.finished ?? [])]) {
    const failedOn = new Set<string>();
    for (const s of state.stages) {
      if (s.status !== 'failed') continue;
      row(s.platform, state.tenant).failedStages += 1;
      failedOn.add(s.platform);
    }
    if (state.status !== 'failed') continue;
    // A build that failed before any stage did (planning, export) counts on all its platforms.
    const platforms = failedOn.size > 0 ? failedOn : new Set(state.stages.map((s) => s.platform));
    for (const p of platforms) row(p, state.tenant).failedBuilds += 1;
  }
  return [...rows.values()]
    .map(({ whyCount, ...r }) => ({ ...r, why: [...whyCount.entries()].sort((a, b) => b[1] - a[1]).map(([why]) => why) }))
    .sort((a, b) => (a.platform === b.platform ? (a.tenant < b.tenant ? -1 : 1) : a.platform < b.platform ? -1 : 1));
}

/** Per platform over all tenants: what an autoscaler of that platform's worker pool needs. */
export function platformTotals(rows: PlatformTenantQueue[]): Array<{ platform: string; waiting: number; held: Partial<Record<HoldReason, number>>; running: number; oldestWaitMs: number | null }> {
  const out = new Map<string, { platform: string; waiting: number; held: Partial<Record<HoldReason, number>>; running: number; oldestWaitMs: number | null }>();
  for (const r of rows) {
    const t = out.get(r.platform) ?? { platform: r.platform, waiting: 0, held: {}, running: 0, oldestWaitMs: null };
    t.waiting += r.waiting;
    t.running += r.running;
    for (const [k, n] of Object.entries(r.held) as Array<[HoldReason, number]>) t.held[k] = (t.held[k] ?? 0) + n;
    if (r.oldestWaitMs !== null) t.oldestWaitMs = Math.max(t.oldestWaitMs ?? 0, r.oldestWaitMs);
    out.set(r.platform, t);
  }
  return [...out.values()];
}
