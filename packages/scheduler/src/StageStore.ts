// Build and stage state in Redis. Every state transition is one Lua script (DESIGN.md §6):
// dependency bookkeeping, tenant slots, in-flight dedupe markers and the build's event stream
// change together or not at all, so frontends and workers can all drive it concurrently.
import type { RedisClient } from './connectRedis.js';
import { fromRedis, jsonFromRedis, luaCommands, schedulerBuildHashSchema, stageHashSchema, traceContextSchema, type LuaCommand, type LuaScript } from '@buildyard/contracts';
import { fixedScriptKeys, parseStageRef, schedulerKeys, stageRef, type SchedulerKeys } from './keys.js';
import { callDeclared, scriptArgs } from './scriptCall.js';
import type { BuildRequest, BuildState, StageJob, StagePlacement, StageState } from './types.js';

export interface QueuedJobRef {
  queue: string;
  jobId: string;
}

export interface AbortOutcome {
  /** Builds that changed to failed/cancelled; running stages of these must be signalled. */
  builds: string[];
  /** BullMQ jobs of cancelled stages, to remove from their queues. */
  jobs: QueuedJobRef[];
}

/** What starting a stage found: skip it (its state says why), or run it with what the job needs. */
export type StartOutcome =
  | { kind: 'skip'; state: string }
  | ({ kind: 'ok'; hasDependents: boolean } & Pick<StageJob, 'attempt' | 'tenant' | 'cacheKey' | 'payload' | 'traceContext' | 'inputs'>);

export interface StageDispatchInfo {
  ref: string;
  buildId: string;
  /** The stage's group (target) platform: its identity. */
  platform: string;
  /** The platform it executes on: its placement. */
  runPlatform: string;
  stageId: string;
  tenant: string;
  priority: number;
  cacheKey: string;
  dispatches: number;
  traceContext: Record<string, string>;
  /** Workers that ran this stage's dependencies (the inputs are in their local snapshots). */
  inputWorkers: string[];
}

type Script = 'submit' | 'claim' | 'markQueued' | 'watch' | 'start' | 'complete' | 'fail' | 'release' | 'abort' | 'recover';

/** Who claims stages (a dispatcher of one process) and how long its claims hold without it. */
export interface Claimer {
  id: string;
  /** Its claimed stages go back to ready this long after its last claim or mark, if their jobs were not added. */
  leaseMs: number;
}
// Every state transition is one script under ../lua, each after the shared prelude. KEYS: the
// fixed keys (fixedScriptKeys), then the keys the call declares by label (each script's header
// says which); a key the script finds only by what it reads is asked for (prelude.lua,
// scriptCall.ts). The calls below declare what they can know, so most take one round trip.
const LUA_DIR = new URL('../lua/', import.meta.url);
const script = (file: string): LuaScript => ({ files: ['prelude.lua', file], keys: 'dynamic' });
const SCRIPTS: Record<Script, LuaScript> = {
  submit: script('submit.lua'), claim: script('claim.lua'), markQueued: script('mark_queued.lua'), start: script('start.lua'),
  complete: script('complete.lua'), fail: script('fail.lua'), release: script('release.lua'), abort: script('abort.lua'),
  recover: script('recover.lua'), watch: script('watch.lua'),
};

/** Per key prefix, the tenants this process's claims asked for (StageStore.tenantHints). */
const TENANT_HINTS = new Map<string, Set<string>>();

/** A build's trace context as stored with it; a malformed one is an error, an absent one none. */
function traceContextOf(text: string | null | undefined, ref: string): Record<string, string> {
  if (text === null || text === undefined || text === '') return {};
  return jsonFromRedis(traceContextSchema, text, `the trace context of stage ${ref}`);
}

function parseJson(text: string | null | undefined): unknown {
  if (text === null || text === undefined || text === '') return undefined;
  try { return JSON.parse(text); } catch { return text; }
}

function toAbortOutcome(raw: unknown): AbortOutcome {
  const [, builds, jobs] = raw as [number, string[], string[]];
  const pairs: QueuedJobRef[] = [];
  for (let i = 0; i + 1 < jobs.length; i += 2) pairs.push({ queue: jobs[i], jobId: jobs[i + 1] });
  return { builds, jobs: pairs };
}

/** Validates a request into the flat stage list the submit script stores. */
export function planStages(req: BuildRequest): Array<{ ref: string; platform: string; runPlatform: string; stage: string; cacheKey: string; payload: string; deps: string[] }> {
  const bad = (what: string) => new Error(`build ${req.buildId}: ${what}`);
  if (!req.buildId || /[|\n]/.test(req.buildId)) throw bad('build id must be non-empty and contain no "|" or newline');
  if (!Number.isInteger(req.priority) || req.priority < 0 || req.priority > 1000) throw bad(`priority ${req.priority} must be an integer in 0..1000`);
  const out: ReturnType<typeof planStages> = [];
  const seenPlatforms = new Set<string>();
  for (const plan of req.platforms) {
    if (seenPlatforms.has(plan.platform)) throw bad(`platform ${plan.platform} is listed twice; merge its stages`);
    seenPlatforms.add(plan.platform);
    const ids = new Set(plan.stages.map((s) => s.id));
    if (ids.size !== plan.stages.length) throw bad(`duplicate stage id in ${plan.platform}; stage ids must be unique per platform`);
    for (const s of plan.stages) {
      if (!s.id || /[|\n]/.test(s.id)) throw bad(`stage id "${s.id}" must be non-empty and contain no "|" or newline`);
      if (s.runPlatform !== undefined && (!s.runPlatform || /[|\n]/.test(s.runPlatform))) {
        throw bad(`stage ${s.id} (${plan.platform}) has run platform "${s.runPlatform.slice(0, 100)}"; give os/arch[/variant] or leave it out`);
      }
      for (const d of s.dependsOn) {
        if (!ids.has(d)) throw bad(`stage ${s.id} (${plan.platform}) depends on unknown stage ${d}; list it in the same platform`);
      }
    }
    // Kahn's algorithm over a dependents index (O(stages + edges)): a cycle would leave stages
    // pending forever.
    const dependents = new Map<string, string[]>();
    const indeg = new Map<string, number>();
    for (const s of plan.stages) {
      const deps = new Set(s.dependsOn);
      indeg.set(s.id, deps.size);
      for (const d of deps) {
        const list = dependents.get(d);
        if (list) list.push(s.id);
        else dependents.set(d, [s.id]);
      }
    }
    const queue = plan.stages.filter((s) => indeg.get(s.id) === 0).map((s) => s.id);
    let seen = 0;
    for (let i = 0; i < queue.length; i++) {
      seen++;
      for (const dep of dependents.get(queue[i]) ?? []) {
        const n = indeg.get(dep)! - 1;
        indeg.set(dep, n);
        if (n === 0) queue.push(dep);
      }
    }
    if (seen !== plan.stages.length) throw bad(`stages of ${plan.platform} form a dependency cycle; remove it`);
    for (const s of plan.stages) {
      out.push({
        ref: stageRef(req.buildId, plan.platform, s.id),
        platform: plan.platform,
        runPlatform: s.runPlatform ?? plan.platform,
        stage: s.id,
        cacheKey: s.cacheKey,
        payload: JSON.stringify(s.payload ?? null),
        deps: [...new Set(s.dependsOn)].map((d) => stageRef(req.buildId, plan.platform, d)),
      });
    }
  }
  return out;
}

export class StageStore {
  readonly keys: SchedulerKeys;

  private readonly scripts: Record<Script, LuaCommand>;
  private readonly fixedKeys: string[];
  /** Tenants whose ready sets and limits claims declare (those claims asked for before). */
  private readonly tenantHints: Set<string>;
  /** Labels of the keys completing a started stage touches (its dependents, tenant, build). */
  private readonly startedHints = new Map<string, string[]>();
  /** Claimers' leases recover asked for before. */
  private readonly leaseHints = new Set<string>();

  constructor(readonly redis: RedisClient, readonly prefix: string) {
    this.keys = schedulerKeys(prefix);
    this.fixedKeys = fixedScriptKeys(this.keys);
    // Shared by the process's stores of one prefix (a process may run many consumers).
    this.tenantHints = TENANT_HINTS.get(prefix) ?? new Set<string>();
    TENANT_HINTS.set(prefix, this.tenantHints);
    this.scripts = luaCommands(redis, 'buildyard_sched', LUA_DIR, SCRIPTS);
  }

  private async run(name: Script, labels: Iterable<string>, args: Array<string | number>): Promise<unknown> {
    return (await this.runLabelled(name, labels, args)).reply;
  }

  private runLabelled(name: Script, labels: Iterable<string>, args: Array<string | number>): Promise<{ reply: unknown; labels: Set<string>; calls: number }> {
    return callDeclared(this.scripts[name], name, this.keys, this.fixedKeys, labels, args);
  }

  /** What placement needs of a stage, from its hash; `dispatches` as its next queueing will count it. */
  private static dispatchInfoOf(ref: string, h: Record<string, string>, dispatches: number): StageDispatchInfo | null {
    if (!h.build || !h.platform || !h.stage) return null;
    const deps = (h.deps ?? '').split('\n').filter(Boolean);
    return {
      ref, buildId: h.build, platform: h.platform, runPlatform: h.runPlatform || h.platform, stageId: h.stage, tenant: h.tenant ?? '',
      priority: Number(h.prio ?? 0), cacheKey: h.cacheKey ?? '', dispatches, traceContext: traceContextOf(h.trace, ref),
      // the workers that ran its dependencies (resolveDone in prelude.lua records them)
      inputWorkers: deps.map((d) => h[`w:${d}`]).filter((w): w is string => !!w),
    };
  }

  /** The labels of a stage's hash and its build's hash and events. */
  private static stageLabels(ref: string): string[] {
    const { buildId } = parseStageRef(ref);
    return [`s:${ref}`, `b:${buildId}`, `be:${buildId}`];
  }

  /** Remembered as hints, within a bound (a hint only saves a round trip). */
  private static remember<T>(set: Set<T>, items: Iterable<T>, max = 512): void {
    for (const it of items) {
      if (set.size >= max) set.clear();
      set.add(it);
    }
  }

  /** The hints a started stage leaves for its completion, taken once. */
  private takeStarted(ref: string): string[] {
    const labels = this.startedHints.get(ref) ?? [];
    this.startedHints.delete(ref);
    return labels;
  }


  async submit(req: BuildRequest): Promise<void> {
    const stages = planStages(req);
    const b = req.buildId;
    await this.run('submit', [`b:${b}`, `bs:${b}`, `be:${b}`, `tr:${req.tenant}`, ...stages.map((s) => `s:${s.ref}`)],
      [b, req.tenant, req.priority, JSON.stringify(req.traceContext ?? {}), JSON.stringify(stages)]);
    StageStore.remember(this.tenantHints, [req.tenant]);
  }

  /**
   * Stages now owed a queue placement (their tenant slot is already taken), with what placement
   * needs (their ready-set entries carry it; see makeReady in prelude.lua): the claim takes them
   * off their ready sets (one script, declaring the tenants' keys); markQueuedAll queues them.
   */
  async claim(defaultTenantLimit: number | 'fleet', claimer: Claimer, max = 100): Promise<StageDispatchInfo[]> {
    const labels = [`lease:${claimer.id}`, ...[...this.tenantHints].flatMap((t) => [`tr:${t}`, `tl:${t}`])];
    const { reply, labels: used } = await this.runLabelled('claim', labels, [defaultTenantLimit, max, claimer.id, claimer.leaseMs]);
    StageStore.remember(this.tenantHints, [...used].filter((l) => l.startsWith('tr:')).map((l) => l.slice(3)), 256);
    return (reply as string[]).map((member) => {
      const nl = member.indexOf('\n');
      const ref = member.slice(0, nl);
      // Written by makeReady (prelude.lua) in the same script run as the fields it copies.
      const v = JSON.parse(member.slice(nl + 1)) as { build: string; platform: string; run?: string; stage: string; tenant?: string; prio?: string;
        cacheKey?: string; dispatches?: string; inputs: unknown; trace?: string };
      return {
        ref, buildId: v.build, platform: v.platform, runPlatform: v.run || v.platform, stageId: v.stage, tenant: v.tenant ?? '', priority: Number(v.prio ?? 0),
        // as markQueued will count this dispatch (the job id names it)
        cacheKey: v.cacheKey ?? '', dispatches: Number(v.dispatches ?? 0) + 1,
        traceContext: traceContextOf(v.trace, ref),
        // cjson encodes an empty list as {}
        inputWorkers: Array.isArray(v.inputs) ? (v.inputs as unknown[]).filter((w): w is string => typeof w === 'string') : [],
      };
    });
  }

  /** The same as claim returns, for a stage placed before (re-homing). */
  async dispatchInfo(ref: string): Promise<StageDispatchInfo | null> {
    const h = await this.redis.hgetall(this.keys.stage(ref));
    return StageStore.dispatchInfoOf(ref, h, Number(h.dispatches ?? 1));
  }

  /**
   * markQueued for many stages in one round trip: per stage 'add' (add its job), 'follow' (it
   * follows the stage running its cache key: no job, its tenant slot was freed) or 'skip'.
   * `kind` 'd': stages this claimer claimed (refused if the claim was recovered meanwhile); 'r':
   * re-homed. Until `jobsAdded`, the stages stay on recover's watch list under the claimer's lease.
   * The same round trip records the items' queues in the set readers list queues from
   * (Scheduler.queueNames): one a stage then does not go to is only listed, empty.
   */
  async markQueuedAll(items: Array<{ ref: string; queue: string; jobId: string }>, claimer: Claimer, kind: 'd' | 'r'): Promise<Array<'add' | 'follow' | 'skip'>> {
    if (items.length === 0) return [];
    const p = this.redis.pipeline();
    // Not cached: another process may forget a queue (forgetIfIdle) that is placed on again.
    p.sadd(this.keys.queues, ...new Set(items.map((it) => it.queue)));
    const cmd = p as unknown as Record<string, (...a: string[]) => unknown>;
    for (const it of items) {
      // Every key it touches is known here: it never asks for more.
      const labels = [`s:${it.ref}`, `be:${parseStageRef(it.ref).buildId}`, `lease:${claimer.id}`];
      cmd.buildyard_sched_markQueued(...scriptArgs(this.keys, this.fixedKeys, labels, [it.ref, it.queue, it.jobId, claimer.id, claimer.leaseMs, kind]).map(String));
    }
    const [recorded, ...marks] = (await p.exec()) ?? [];
    if (recorded?.[0]) throw recorded[0];
    return marks.map(([err, v]) => { if (err) throw err; return v === 1 ? 'add' : v === 2 ? 'follow' : 'skip'; });
  }

  /**
   * Before a re-homing caller removes stages' jobs from a dead or draining worker's queue: the
   * stages whose job that still is go on recover's watch list under its lease (a crash between
   * the removal and markQueuedAll then gives them back to ready). Returns the refs watched.
   */
  async watch(items: Array<{ ref: string; jobId: string }>, claimer: Claimer): Promise<string[]> {
    if (items.length === 0) return [];
    const labels = [`lease:${claimer.id}`, ...items.map((it) => `s:${it.ref}`)];
    return (await this.run('watch', labels, [claimer.id, claimer.leaseMs, ...items.flatMap((it) => [it.ref, it.jobId])])) as string[];
  }

  /** The stages' jobs exist (or their removal was refused): a crash of their dispatcher can no longer lose them. */
  async jobsAdded(refs: string[]): Promise<void> {
    if (refs.length > 0) await this.redis.hdel(this.claimedKey, ...refs);
  }

  /**
   * Claimed or queued stages whose claimer's lease expired before their jobs were added (the
   * process died between claim and queue) go back to ready; returns how many.
   */
  async recoverClaims(): Promise<number> {
    const { reply, labels } = await this.runLabelled('recover', this.leaseHints, []);
    StageStore.remember(this.leaseHints, [...labels].filter((l) => l.startsWith('lease:')), 64);
    return Number(reply);
  }

  /** Stages between claim and job add (recover.lua's watch list). */
  get claimedKey(): string {
    return this.keys.claimed;
  }

  /** A claimer's lease: present while its claims are its own. */
  leaseKey(claimerId: string): string {
    return this.keys.claimerLease(claimerId);
  }

  async start(ref: string, worker: string, emulated: boolean, jobId: string): Promise<StartOutcome> {
    const raw = (await this.run('start', [...StageStore.stageLabels(ref), `w:${worker}`], [ref, worker, emulated ? '1' : '0', jobId])) as string[];
    if (raw[0] !== 'ok') return { kind: 'skip', state: raw[1] };
    const { buildId } = parseStageRef(ref);
    // What its completion will touch: its dependents and its tenant's ready set (they become ready).
    if (this.startedHints.size >= 10_000) this.startedHints.clear();
    this.startedHints.set(ref, [`bs:${buildId}`, `tr:${raw[2]}`, ...raw[6].split('\n').filter(Boolean).map((d) => `s:${d}`)]);
    const inputs: Record<string, unknown> = {};
    for (let i = 7; i + 1 < raw.length; i += 2) inputs[raw[i]] = parseJson(raw[i + 1]) ?? null;
    return {
      kind: 'ok', hasDependents: raw[6] !== '', attempt: Number(raw[1]), tenant: raw[2], cacheKey: raw[3], payload: parseJson(raw[4]) ?? null,
      traceContext: traceContextOf(raw[5], ref), inputs,
    };
  }

  /**
   * running -> done. Its first script call is sent before this returns (see callDeclared): a
   * claim sent right after it on the same connection sees the dependents it made ready, unless
   * `calls` > 1 (it asked for keys first and changed nothing on that call; the caller then claims
   * again).
   */
  async complete(ref: string, worker: string, emulated: boolean, resultJson: string, jobId: string): Promise<{ current: boolean; calls: number }> {
    const labels = [...StageStore.stageLabels(ref), `w:${worker}`, ...this.takeStarted(ref)];
    const { reply, calls } = await this.runLabelled('complete', labels, [ref, worker, emulated ? '1' : '0', resultJson, jobId]);
    return { current: reply === 1, calls };
  }

  async fail(ref: string, worker: string, error: string, jobId: string): Promise<AbortOutcome> {
    const labels = [...StageStore.stageLabels(ref), `w:${worker}`, ...this.takeStarted(ref)];
    return toAbortOutcome(await this.run('fail', labels, [ref, worker, error, jobId]));
  }

  async release(ref: string, worker: string): Promise<void> {
    this.takeStarted(ref);
    await this.run('release', [`s:${ref}`, `w:${worker}`], [ref, worker]);
  }

  async abort(buildId: string, status: 'failed' | 'cancelled', error: string): Promise<AbortOutcome> {
    return toAbortOutcome(await this.run('abort', [`b:${buildId}`, `bs:${buildId}`, `be:${buildId}`], [buildId, status, error]));
  }

  async stagePlacement(ref: string): Promise<StagePlacement | null> {
    const [state, worker, emulated] = await this.redis.hmget(this.keys.stage(ref), 'state', 'worker', 'emulated');
    if (!state) return null;
    return { ...(worker ? { worker } : {}), ...(emulated !== null ? { emulated: emulated === '1' } : {}) };
  }

  async getBuild(buildId: string): Promise<BuildState | null> {
    const rawBuild = await this.redis.hgetall(this.keys.build(buildId));
    if (!rawBuild.state) return null;
    const b = fromRedis(schedulerBuildHashSchema, rawBuild, `the scheduler record of build ${buildId}`);
    const refs = await this.redis.lrange(this.keys.buildStages(buildId), 0, -1);
    const stages: StageState[] = [];
    for (const ref of refs) {
      const raw = await this.redis.hgetall(this.keys.stage(ref));
      const s = fromRedis(stageHashSchema, raw, `the scheduler record of stage ${ref}`);
      const st: StageState = {
        platform: s.platform, runPlatform: raw.runPlatform || s.platform, stageId: s.stage, status: s.state, cacheKey: s.cacheKey,
        dependsOn: s.deps.split('\n').filter(Boolean).map((d) => d.split('|')[2] ?? d),
        attempts: s.attempts,
      };
      if (raw.worker) st.worker = raw.worker;
      if (raw.emulated !== undefined) st.emulated = raw.emulated === '1';
      if (raw.queue) st.queue = raw.queue;
      if (raw.result !== undefined) st.result = parseJson(raw.result) ?? null;
      if (raw.error) st.error = raw.error;
      if (raw.dedupedFrom) st.dedupedFrom = raw.dedupedFrom;
      stages.push(st);
    }
    const state: BuildState = {
      buildId, tenant: b.tenant, priority: b.prio, status: b.state,
      createdAt: b.createdAt, stages,
    };
    if (rawBuild.error) state.error = rawBuild.error;
    if (rawBuild.finishedAt) state.finishedAt = Number(rawBuild.finishedAt);
    return state;
  }
}
