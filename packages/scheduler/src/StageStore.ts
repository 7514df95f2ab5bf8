// Build and stage state in Redis. Every state transition is one Lua script (DESIGN.md §6):
// dependency bookkeeping, tenant slots, in-flight dedupe markers and the build's event stream
// change together or not at all, so frontends and workers can all drive it concurrently.
import type { Redis } from 'ioredis';
import { fromRedis, jsonFromRedis, schedulerBuildHashSchema, stageHashSchema, traceContextSchema } from '@buildyard/contracts';
import { schedulerKeys, stageRef, type SchedulerKeys } from './keys.js';
import type { BuildRequest, BuildState, StageState } from './types.js';

// Shared helpers, prepended to every script. ARGV[1] is the key prefix.
const PRELUDE = `
local P = ARGV[1]
local function skey(ref) return P..':stage:'..ref end
local function bkey(bid) return P..':build:'..bid end
local function split(s)
  local t = {}
  if s and s ~= '' then for x in string.gmatch(s, '[^\\n]+') do t[#t+1] = x end end
  return t
end
local function emit(bid, fields)
  redis.call('XADD', bkey(bid)..':events', '*', unpack(fields))
end
local function stageFields(ref)
  local v = redis.call('HMGET', skey(ref), 'build', 'platform', 'stage')
  return v[1], v[2], v[3]
end
-- gives the stage's tenant slot back (idempotent through the 'counted' flag)
local function release(ref)
  local sk = skey(ref)
  if redis.call('HGET', sk, 'counted') == '1' then
    redis.call('HSET', sk, 'counted', '0')
    local t = redis.call('HGET', sk, 'tenant')
    local n = redis.call('DECR', P..':tenant:'..t..':active')
    if n < 0 then redis.call('SET', P..':tenant:'..t..':active', 0) end
  end
end
local function workerDone(worker)
  if worker and worker ~= '' then
    local wk = P..':worker:'..worker
    if redis.call('EXISTS', wk) == 1 then
      local n = redis.call('HINCRBY', wk, 'running', -1)
      if n < 0 then redis.call('HSET', wk, 'running', 0) end
    end
  end
end
local function makeReady(ref)
  local sk = skey(ref)
  local v = redis.call('HMGET', sk, 'tenant', 'prio')
  redis.call('HSET', sk, 'state', 'ready')
  local seq = redis.call('INCR', P..':seq')
  -- higher priority first, then first come first served
  redis.call('ZADD', P..':tenant:'..v[1]..':ready', (1000 - tonumber(v[2])) * 1099511627776 + seq, ref)
  redis.call('SADD', P..':tenants', v[1])
end
-- finished builds stay readable for P:config retentionSec (set by the Scheduler), then expire
local function expireBuild(bid)
  local ttl = tonumber(redis.call('HGET', P..':config', 'retentionSec') or '0')
  if ttl <= 0 then return end
  local bk = bkey(bid)
  for _, ref in ipairs(redis.call('LRANGE', bk..':stages', 0, -1)) do redis.call('EXPIRE', skey(ref), ttl) end
  redis.call('EXPIRE', bk, ttl)
  redis.call('EXPIRE', bk..':stages', ttl)
  redis.call('EXPIRE', bk..':events', ttl)
end
local function resolveDone(ref)
  local sk = skey(ref)
  local bid = redis.call('HGET', sk, 'build')
  for _, d in ipairs(split(redis.call('HGET', sk, 'dependents'))) do
    local left = redis.call('HINCRBY', skey(d), 'pending', -1)
    if left <= 0 and redis.call('HGET', skey(d), 'state') == 'pending' then makeReady(d) end
  end
  local bk = bkey(bid)
  local done = redis.call('HINCRBY', bk, 'done', 1)
  if done >= tonumber(redis.call('HGET', bk, 'total')) and redis.call('HGET', bk, 'state') == 'running' then
    redis.call('HSET', bk, 'state', 'done', 'finishedAt', ARGV[2])
    emit(bid, {'type', 'build-done'})
    expireBuild(bid)
  end
end
-- the in-flight marker of a cancelled leader is dropped and its followers compete again
-- Ends ref's lead of the in-flight marker of cache key ck; returns the builds' stages that waited on it.
local function takeFollowers(ck, ref)
  if not ck or ck == '' then return {} end
  local ik = P..':inflight:'..ck
  if redis.call('GET', ik) ~= ref then return {} end
  redis.call('DEL', ik)
  local fl = redis.call('LRANGE', ik..':followers', 0, -1)
  redis.call('DEL', ik..':followers')
  return fl
end
local function requeueFollowers(ref)
  for _, f in ipairs(takeFollowers(redis.call('HGET', skey(ref), 'cacheKey'), ref)) do
    if redis.call('HGET', skey(f), 'state') == 'deduped' then makeReady(f) end
  end
end
local function abortBuild(bid, status, err, out)
  local bk = bkey(bid)
  if redis.call('HGET', bk, 'state') ~= 'running' then return end
  redis.call('HSET', bk, 'state', status, 'error', err, 'finishedAt', ARGV[2])
  for _, ref in ipairs(redis.call('LRANGE', bk..':stages', 0, -1)) do
    local sk = skey(ref)
    local v = redis.call('HMGET', sk, 'state', 'queue', 'jobId', 'tenant', 'cacheKey')
    local s = v[1]
    if s == 'pending' or s == 'ready' or s == 'dispatching' or s == 'queued' or s == 'running' or s == 'deduped' then
      redis.call('HSET', sk, 'state', 'cancelled')
      release(ref)
      if s == 'ready' then redis.call('ZREM', P..':tenant:'..v[4]..':ready', ref) end
      if (s == 'queued' or s == 'running') and v[2] and v[3] then
        out.jobs[#out.jobs + 1] = v[2]
        out.jobs[#out.jobs + 1] = v[3]
      end
      if s == 'deduped' then redis.call('LREM', P..':inflight:'..v[5]..':followers', 0, ref) end
      requeueFollowers(ref)
    end
  end
  emit(bid, {'type', 'build-'..status, 'error', err})
  expireBuild(bid)
  out.builds[#out.builds + 1] = bid
end
`;

const SUBMIT = `
local bid, tenant, prio, trace = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stages = cjson.decode(ARGV[7])
local bk = bkey(bid)
if redis.call('EXISTS', bk) == 1 then return redis.error_reply('build '..bid..' already exists') end
redis.call('HSET', bk, 'tenant', tenant, 'prio', prio, 'state', 'running', 'createdAt', ARGV[2],
  'total', #stages, 'done', 0, 'trace', trace)
local dependents = {}
for _, s in ipairs(stages) do
  for _, d in ipairs(s.deps) do
    dependents[d] = dependents[d] or {}
    table.insert(dependents[d], s.ref)
  end
end
for _, s in ipairs(stages) do
  redis.call('RPUSH', bk..':stages', s.ref)
  redis.call('HSET', skey(s.ref), 'build', bid, 'platform', s.platform, 'stage', s.stage, 'tenant', tenant,
    'prio', prio, 'cacheKey', s.cacheKey, 'payload', s.payload, 'deps', table.concat(s.deps, '\\n'),
    'dependents', table.concat(dependents[s.ref] or {}, '\\n'), 'pending', #s.deps, 'state', 'pending',
    'counted', '0', 'dispatches', 0, 'attempts', 0)
end
for _, s in ipairs(stages) do
  if #s.deps == 0 then makeReady(s.ref) end
end
if #stages == 0 then
  redis.call('HSET', bk, 'state', 'done', 'finishedAt', ARGV[2])
  emit(bid, {'type', 'build-done'})
end
return 1
`;

// Moves ready stages into dispatch while their tenant is under its limit. A stage whose cache
// key is already in flight becomes a follower of that leader instead (SET NX marker).
const CLAIM = `
local defaultLimit = tonumber(redis.call('HGET', P..':config', 'tenantLimit') or ARGV[3])
local maxClaims = tonumber(ARGV[4])
local out = {}
for _, t in ipairs(redis.call('SMEMBERS', P..':tenants')) do
  local rk = P..':tenant:'..t..':ready'
  local ak = P..':tenant:'..t..':active'
  local limit = tonumber(redis.call('GET', P..':tenant:'..t..':limit') or defaultLimit)
  while #out < maxClaims do
    if limit > 0 and tonumber(redis.call('GET', ak) or '0') >= limit then break end
    local top = redis.call('ZPOPMIN', rk)
    if #top == 0 then redis.call('SREM', P..':tenants', t) break end
    local ref = top[1]
    local sk = skey(ref)
    if redis.call('HGET', sk, 'state') == 'ready' then
      local ck = redis.call('HGET', sk, 'cacheKey')
      local leader = nil
      if ck ~= '' then
        local ik = P..':inflight:'..ck
        if not redis.call('SET', ik, ref, 'NX') then leader = redis.call('GET', ik) end
      end
      if leader and leader ~= ref then
        redis.call('HSET', sk, 'state', 'deduped', 'leader', leader)
        redis.call('RPUSH', P..':inflight:'..ck..':followers', ref)
        local b, p, s = stageFields(ref)
        emit(b, {'type', 'stage-deduped', 'platform', p, 'stage', s, 'leader', leader})
      else
        redis.call('HSET', sk, 'state', 'dispatching', 'counted', '1')
        redis.call('INCR', ak)
        redis.call('HINCRBY', sk, 'dispatches', 1)
        out[#out + 1] = ref
      end
    end
  end
end
return out
`;

// dispatching -> queued (or re-queued by the sweeper); 0 means "do not add the job".
const MARK_QUEUED = `
local ref, queue, jobId = ARGV[3], ARGV[4], ARGV[5]
local sk = skey(ref)
local s = redis.call('HGET', sk, 'state')
if s ~= 'dispatching' and s ~= 'queued' and s ~= 'running' then return 0 end
redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId)
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-queued', 'platform', p, 'stage', st, 'queue', queue})
return 1
`;

const START = `
local ref, worker, emulated, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sk = skey(ref)
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker')
if (v[1] ~= 'queued' and v[1] ~= 'running') or v[2] ~= jobId then return {'skip', v[1] or 'missing'} end
-- a restart after a stall: the dead worker's count no longer includes it
if v[1] == 'running' and v[3] ~= worker then workerDone(v[3]) end
local attempt = redis.call('HINCRBY', sk, 'attempts', 1)
redis.call('HSET', sk, 'state', 'running', 'worker', worker, 'emulated', emulated, 'startedAt', ARGV[2])
if redis.call('EXISTS', P..':worker:'..worker) == 1 then redis.call('HINCRBY', P..':worker:'..worker, 'running', 1) end
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-started', 'platform', p, 'stage', st, 'worker', worker, 'emulated', emulated, 'attempt', attempt})
local f = redis.call('HMGET', sk, 'tenant', 'cacheKey', 'payload', 'deps')
local out = {'ok', tostring(attempt), f[1] or '', f[2] or '', f[3] or 'null', redis.call('HGET', bkey(b), 'trace') or '{}'}
for _, d in ipairs(split(f[4])) do
  local dv = redis.call('HMGET', skey(d), 'stage', 'result')
  out[#out + 1] = dv[1] or d
  out[#out + 1] = dv[2] or 'null'
end
return out
`;

const COMPLETE = `
local ref, worker, emulated, result, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local sk = skey(ref)
workerDone(worker)
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'cacheKey')
if v[1] ~= 'running' or v[2] ~= jobId or v[3] ~= worker then
  -- a stale report (the stage moved on to another worker) must not free its tenant slot
  if v[1] ~= 'running' and v[1] ~= 'queued' and v[1] ~= 'dispatching' then release(ref) end
  return 0
end
release(ref)
redis.call('HSET', sk, 'state', 'done', 'result', result, 'finishedAt', ARGV[2])
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-completed', 'platform', p, 'stage', st, 'worker', worker, 'emulated', emulated, 'result', result})
resolveDone(ref)
for _, f in ipairs(takeFollowers(v[4], ref)) do
  local fk = skey(f)
  if redis.call('HGET', fk, 'state') == 'deduped' then
    redis.call('HSET', fk, 'state', 'done', 'result', result, 'worker', worker, 'emulated', emulated,
      'dedupedFrom', ref, 'finishedAt', ARGV[2])
    local fb, fp, fs = stageFields(f)
    emit(fb, {'type', 'stage-completed', 'platform', fp, 'stage', fs, 'worker', worker, 'emulated', emulated,
      'result', result, 'dedupedFrom', ref})
    resolveDone(f)
  end
end
return 1
`;

// A real failure: the stage, its followers and their builds fail; siblings are cancelled.
const FAIL = `
local ref, worker, err, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sk = skey(ref)
workerDone(worker)
local out = { builds = {}, jobs = {} }
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'cacheKey')
if v[1] ~= 'running' or v[2] ~= jobId or v[3] ~= worker then
  if v[1] ~= 'running' and v[1] ~= 'queued' and v[1] ~= 'dispatching' then release(ref) end
  return {0, {}, {}}
end
release(ref)
redis.call('HSET', sk, 'state', 'failed', 'error', err, 'finishedAt', ARGV[2])
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-failed', 'platform', p, 'stage', st, 'worker', worker, 'error', err})
for _, f in ipairs(takeFollowers(v[4], ref)) do
  local fk = skey(f)
  if redis.call('HGET', fk, 'state') == 'deduped' then
    redis.call('HSET', fk, 'state', 'failed', 'error', err, 'dedupedFrom', ref, 'finishedAt', ARGV[2])
    local fb, fp, fs = stageFields(f)
    emit(fb, {'type', 'stage-failed', 'platform', fp, 'stage', fs, 'error', err, 'dedupedFrom', ref})
    abortBuild(fb, 'failed', 'stage '..fs..' ('..fp..') failed: '..err, out)
  end
end
abortBuild(b, 'failed', 'stage '..st..' ('..p..') failed: '..err, out)
return {1, out.builds, out.jobs}
`;

// The consumer gave up a stage that was cancelled under it (or whose lock it lost).
const RELEASE = `
local ref, worker = ARGV[3], ARGV[4]
workerDone(worker)
local s = redis.call('HGET', skey(ref), 'state')
if s ~= 'running' and s ~= 'queued' then release(ref) end
return 1
`;

const ABORT = `
local out = { builds = {}, jobs = {} }
abortBuild(ARGV[3], ARGV[4], ARGV[5], out)
return {#out.builds, out.builds, out.jobs}
`;

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

export type StartOutcome =
  | { kind: 'skip'; state: string }
  | {
      kind: 'ok';
      attempt: number;
      tenant: string;
      cacheKey: string;
      payload: unknown;
      traceContext: Record<string, string>;
      inputs: Record<string, unknown>;
    };

export interface StageDispatchInfo {
  ref: string;
  buildId: string;
  platform: string;
  stageId: string;
  tenant: string;
  priority: number;
  cacheKey: string;
  dispatches: number;
  traceContext: Record<string, string>;
  /** Workers that ran this stage's dependencies (the inputs are in their local snapshots). */
  inputWorkers: string[];
}

type Script = 'submit' | 'claim' | 'markQueued' | 'start' | 'complete' | 'fail' | 'release' | 'abort';
const SOURCES: Record<Script, string> = {
  submit: SUBMIT, claim: CLAIM, markQueued: MARK_QUEUED, start: START,
  complete: COMPLETE, fail: FAIL, release: RELEASE, abort: ABORT,
};

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
export function planStages(req: BuildRequest): Array<{ ref: string; platform: string; stage: string; cacheKey: string; payload: string; deps: string[] }> {
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
      for (const d of s.dependsOn) {
        if (!ids.has(d)) throw bad(`stage ${s.id} (${plan.platform}) depends on unknown stage ${d}; list it in the same platform`);
      }
    }
    // Kahn's algorithm: a cycle would leave stages pending forever.
    const indeg = new Map(plan.stages.map((s) => [s.id, s.dependsOn.length]));
    const queue = plan.stages.filter((s) => s.dependsOn.length === 0).map((s) => s.id);
    let seen = 0;
    while (queue.length > 0) {
      const id = queue.shift()!;
      seen++;
      for (const s of plan.stages) {
        if (s.dependsOn.includes(id)) {
          const n = indeg.get(s.id)! - s.dependsOn.filter((d) => d === id).length;
          indeg.set(s.id, n);
          if (n === 0) queue.push(s.id);
        }
      }
    }
    if (seen !== plan.stages.length) throw bad(`stages of ${plan.platform} form a dependency cycle; remove it`);
    for (const s of plan.stages) {
      out.push({
        ref: stageRef(req.buildId, plan.platform, s.id),
        platform: plan.platform,
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
  private readonly shas = new Map<Script, string>();

  constructor(readonly redis: Redis, readonly prefix: string) {
    this.keys = schedulerKeys(prefix);
  }

  private async run(script: Script, args: Array<string | number>): Promise<unknown> {
    const argv = [this.prefix, Date.now(), ...args].map(String);
    let sha = this.shas.get(script);
    if (!sha) {
      sha = (await this.redis.script('LOAD', PRELUDE + SOURCES[script])) as string;
      this.shas.set(script, sha);
    }
    try {
      return await this.redis.evalsha(sha, 0, ...argv);
    } catch (err) {
      // Redis restarted or flushed its script cache.
      if (err instanceof Error && err.message.includes('NOSCRIPT')) {
        this.shas.delete(script);
        return this.redis.eval(PRELUDE + SOURCES[script], 0, ...argv);
      }
      throw err;
    }
  }

  async submit(req: BuildRequest): Promise<void> {
    const stages = planStages(req);
    await this.run('submit', [req.buildId, req.tenant, req.priority, JSON.stringify(req.traceContext ?? {}), JSON.stringify(stages)]);
  }

  /** Refs of stages now owed a queue placement (their tenant slot is already taken). */
  async claim(defaultTenantLimit: number, max = 100): Promise<string[]> {
    return (await this.run('claim', [defaultTenantLimit, max])) as string[];
  }

  async dispatchInfo(ref: string): Promise<StageDispatchInfo | null> {
    const [build, platform, stage, tenant, prio, cacheKey, dispatches, deps] = await this.redis.hmget(
      this.keys.stage(ref), 'build', 'platform', 'stage', 'tenant', 'prio', 'cacheKey', 'dispatches', 'deps');
    if (build === null || platform === null || stage === null) return null;
    const depRefs = (deps ?? '').split('\n').filter(Boolean);
    const inputWorkers: string[] = [];
    for (const d of depRefs) {
      const w = await this.redis.hget(this.keys.stage(d), 'worker');
      if (w) inputWorkers.push(w);
    }
    const trace = await this.redis.hget(this.keys.build(build), 'trace');
    return {
      ref, buildId: build, platform, stageId: stage, tenant: tenant ?? '', priority: Number(prio ?? 0),
      cacheKey: cacheKey ?? '', dispatches: Number(dispatches ?? 1),
      traceContext: traceContextOf(trace, ref), inputWorkers,
    };
  }

  async markQueued(ref: string, queue: string, jobId: string): Promise<boolean> {
    return (await this.run('markQueued', [ref, queue, jobId])) === 1;
  }

  async start(ref: string, worker: string, emulated: boolean, jobId: string): Promise<StartOutcome> {
    const raw = (await this.run('start', [ref, worker, emulated ? '1' : '0', jobId])) as string[];
    if (raw[0] !== 'ok') return { kind: 'skip', state: raw[1] };
    const inputs: Record<string, unknown> = {};
    for (let i = 6; i + 1 < raw.length; i += 2) inputs[raw[i]] = parseJson(raw[i + 1]) ?? null;
    return {
      kind: 'ok', attempt: Number(raw[1]), tenant: raw[2], cacheKey: raw[3], payload: parseJson(raw[4]) ?? null,
      traceContext: traceContextOf(raw[5], ref), inputs,
    };
  }

  async complete(ref: string, worker: string, emulated: boolean, resultJson: string, jobId: string): Promise<boolean> {
    return (await this.run('complete', [ref, worker, emulated ? '1' : '0', resultJson, jobId])) === 1;
  }

  async fail(ref: string, worker: string, error: string, jobId: string): Promise<AbortOutcome> {
    return toAbortOutcome(await this.run('fail', [ref, worker, error, jobId]));
  }

  async release(ref: string, worker: string): Promise<void> {
    await this.run('release', [ref, worker]);
  }

  async abort(buildId: string, status: 'failed' | 'cancelled', error: string): Promise<AbortOutcome> {
    return toAbortOutcome(await this.run('abort', [buildId, status, error]));
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
        platform: s.platform, stageId: s.stage, status: s.state, cacheKey: s.cacheKey,
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
