-- Shared helpers, prepended to every script. KEYS[1..10] are the scheduler's fixed keys
-- (fixedScriptKeys in keys.ts, in this order); the call's own keys follow, KEYS[11..], named by
-- the labels in ARGV[3] (newline-separated, in KEYS order; keys.ts labelKey maps them).
-- ARGV[1] is the key prefix `{prefix}` (for pub/sub channels only), ARGV[2] the time, ARGV[4..]
-- the script's own arguments.
-- Every key a script touches is declared (Redis Cluster requires it). A key found only from the
-- state the script reads (a stage's dependents, a tenant's ready stages, a cache key's
-- followers, a worker's platforms) is asked for: each script first decides what it will do,
-- reading declared keys only; when that needs a key it was not given, it changes nothing and
-- returns {'?keys', labels...}, and the caller (scriptCall.ts) calls it again with them added.
-- That call reads the state afresh, so a decision never rests on what an earlier call saw.
local P = ARGV[1]
local CONFIG, TENANTS, HELD, SEQ, BEATS, DRAINING, ACTIVE, CLAIMED, INFLIGHT, FOLLOWERS =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
local NFIXED = 10
local DECLARED, NEED, ASKED = {}, {}, {}
do
  local i = NFIXED
  for l in string.gmatch(ARGV[3], '[^\n]+') do i = i + 1; DECLARED[l] = KEYS[i] end
end
-- The key of a label, or nil when the caller did not declare it (it is then asked for).
local function key(label)
  local k = DECLARED[label]
  if not k and not ASKED[label] then ASKED[label] = true; NEED[#NEED + 1] = label end
  return k
end
-- The key of a label a decided action uses: deciding asked for it, so it is declared.
local function must(label)
  local k = DECLARED[label]
  if not k then error('scheduler script touches undeclared key '..label) end
  return k
end
-- What a script returns when it needs more keys (nil when it has them all).
local function asked()
  if #NEED > 0 then return {'?keys', unpack(NEED)} end
end
local function split(s)
  local t = {}
  if s and s ~= '' then for x in string.gmatch(s, '[^\n]+') do t[#t+1] = x end end
  return t
end
-- A stage ref is `build|platform|stage`.
local function buildOf(ref) return string.match(ref, '^([^|]*)') end
local function emit(bid, fields)
  redis.call('XADD', must('be:'..bid), '*', unpack(fields))
end
-- Tenant slots: a claim takes one (claim.lua); while the stage is claimed but not yet queued
-- its entry in CLAIMED holds it, from mark_queued.lua on the stage ('counted' = 1).
local function freeSlot(t)
  if redis.call('HINCRBY', ACTIVE, t, -1) < 0 then redis.call('HSET', ACTIVE, t, 0) end
  -- a tenant held at its limit may claim again
  redis.call('SMOVE', HELD, TENANTS, t)
end
-- Gives the stage's tenant slot back (idempotent through the 'counted' flag).
local function release(sk)
  if redis.call('HGET', sk, 'counted') == '1' then
    redis.call('HSET', sk, 'counted', '0')
    freeSlot(redis.call('HGET', sk, 'tenant'))
  end
end
-- A claimed stage (still 'ready', out of its ready set) that will not be queued: its claim and slot go.
local function dropClaim(ref, tenant)
  if redis.call('HDEL', CLAIMED, ref) == 1 then freeSlot(tenant) end
end
-- One stage fewer running on the worker whose hash is wk (declared; nil when there is none).
local function workerDone(wk)
  if wk and redis.call('EXISTS', wk) == 1 then
    local n = redis.call('HINCRBY', wk, 'running', -1)
    if n < 0 then redis.call('HSET', wk, 'running', 0) end
  end
end
-- Its tenant's ready set ('tr:'..tenant) must have been asked for.
-- Its member in the ready set is the ref, a newline and what placement needs of it (JSON): a
-- claim hands that out without touching the stage's keys (claim.lua). The stage keeps the member
-- ('readyAs') to take it out again (abortBuild).
local function makeReady(ref, sk)
  local v = redis.call('HMGET', sk, 'tenant', 'prio', 'build', 'platform', 'stage', 'cacheKey', 'dispatches', 'deps', 'runPlatform', 'trace')
  local inputs = {}
  local deps = split(v[8])
  if #deps > 0 then
    local fields = {}
    for i, d in ipairs(deps) do fields[i] = 'w:'..d end
    -- the workers that ran its dependencies (resolveDone): placement prefers them
    for _, w in ipairs(redis.call('HMGET', sk, unpack(fields))) do
      if w then inputs[#inputs + 1] = w end
    end
  end
  local member = ref..'\n'..cjson.encode({build = v[3], platform = v[4], run = v[9] or v[4], stage = v[5], tenant = v[1], prio = v[2],
    cacheKey = v[6], dispatches = v[7], inputs = inputs, trace = v[10] or ''})
  redis.call('HSET', sk, 'state', 'ready', 'readyAs', member)
  local seq = redis.call('INCR', SEQ)
  -- higher priority first, then first come first served
  redis.call('ZADD', must('tr:'..v[1]), (1000 - tonumber(v[2])) * 1099511627776 + seq, member)
  -- a tenant held at its limit stays held until one of its slots frees (see release)
  if redis.call('SISMEMBER', HELD, v[1]) == 0 then redis.call('SADD', TENANTS, v[1]) end
end
-- Finished builds stay readable for P:config retentionSec (set by the Scheduler), then expire.
local function retention() return tonumber(redis.call('HGET', CONFIG, 'retentionSec') or '0') end
local function planExpire(bid)
  key('b:'..bid)
  key('be:'..bid)
  if retention() <= 0 then return end
  local ls = key('bs:'..bid)
  if ls then for _, ref in ipairs(redis.call('LRANGE', ls, 0, -1)) do key('s:'..ref) end end
end
local function expireBuild(bid)
  local ttl = retention()
  if ttl <= 0 then return end
  local ls = must('bs:'..bid)
  for _, ref in ipairs(redis.call('LRANGE', ls, 0, -1)) do redis.call('EXPIRE', must('s:'..ref), ttl) end
  redis.call('EXPIRE', must('b:'..bid), ttl)
  redis.call('EXPIRE', ls, ttl)
  redis.call('EXPIRE', must('be:'..bid), ttl)
end
-- The followers of a cache key while ref leads it (read only).
local function followersOf(ck, ref)
  if not ck or ck == '' or redis.call('HGET', INFLIGHT, ck) ~= ref then return {} end
  return split(redis.call('HGET', FOLLOWERS, ck))
end
-- Ends ref's lead of cache key ck; returns the stages that waited on it.
local function takeFollowers(ck, ref)
  if not ck or ck == '' or redis.call('HGET', INFLIGHT, ck) ~= ref then return {} end
  local fl = split(redis.call('HGET', FOLLOWERS, ck))
  redis.call('HDEL', INFLIGHT, ck)
  redis.call('HDEL', FOLLOWERS, ck)
  return fl
end
-- Completions this call plans, per build: the one that finishes a build expires it.
local COMPLETING = {}
-- Asks for what resolveDone(ref) touches: its dependents, its tenant's ready set, its build.
local function planDone(ref, sk)
  local v = redis.call('HMGET', sk, 'build', 'dependents', 'tenant')
  local deps = split(v[2])
  for _, d in ipairs(deps) do key('s:'..d) end
  if #deps > 0 then key('tr:'..v[3]) end
  local bk = key('b:'..v[1])
  key('be:'..v[1])
  if bk then
    COMPLETING[v[1]] = (COMPLETING[v[1]] or 0) + 1
    local b = redis.call('HMGET', bk, 'done', 'total', 'state')
    if b[3] == 'running' and tonumber(b[1]) + COMPLETING[v[1]] >= tonumber(b[2]) then planExpire(v[1]) end
  end
end
-- The stage (done, its result from worker) counts towards its dependents and its build. Each
-- dependent keeps its inputs' worker ('w:<dep>') and result ('r:<dep>'): its dispatcher and
-- start.lua read them from the dependent's own hash.
local function resolveDone(ref, sk, worker, result)
  local v = redis.call('HMGET', sk, 'build', 'dependents')
  local bid = v[1]
  for _, d in ipairs(split(v[2])) do
    local dk = must('s:'..d)
    redis.call('HSET', dk, 'w:'..ref, worker, 'r:'..ref, result)
    local left = redis.call('HINCRBY', dk, 'pending', -1)
    if left <= 0 and redis.call('HGET', dk, 'state') == 'pending' then makeReady(d, dk) end
  end
  local bk = must('b:'..bid)
  local done = redis.call('HINCRBY', bk, 'done', 1)
  local b = redis.call('HMGET', bk, 'total', 'state')
  if done >= tonumber(b[1]) and b[2] == 'running' then
    redis.call('HSET', bk, 'state', 'done', 'finishedAt', ARGV[2])
    emit(bid, {'type', 'build-done'})
    expireBuild(bid)
  end
end
local LIVE = { pending = true, ready = true, dispatching = true, queued = true, running = true, deduped = true }
-- Asks for what abortBuild(bid) touches: the build, its stages, its tenant's ready set and the
-- followers its leading stages hand back (with their tenants' ready sets).
local function planAbort(bid)
  local bk, ls = key('b:'..bid), key('bs:'..bid)
  key('be:'..bid)
  if not bk or not ls then return end
  local b = redis.call('HMGET', bk, 'state', 'tenant')
  if b[1] ~= 'running' then return end
  key('tr:'..b[2])
  for _, ref in ipairs(redis.call('LRANGE', ls, 0, -1)) do
    local sk = key('s:'..ref)
    if sk then
      local v = redis.call('HMGET', sk, 'state', 'cacheKey')
      if LIVE[v[1]] then
        for _, f in ipairs(followersOf(v[2], ref)) do
          local fk = key('s:'..f)
          if fk then key('tr:'..(redis.call('HGET', fk, 'tenant') or '')) end
        end
      end
    end
  end
end
-- A cancelled leader's followers compete again.
local function requeueFollowers(ref, sk)
  for _, f in ipairs(takeFollowers(redis.call('HGET', sk, 'cacheKey'), ref)) do
    local fk = must('s:'..f)
    if redis.call('HGET', fk, 'state') == 'deduped' then makeReady(f, fk) end
  end
end
-- Drops ref from the followers of cache key ck.
local function unfollow(ck, ref)
  local kept = {}
  for _, f in ipairs(split(redis.call('HGET', FOLLOWERS, ck))) do if f ~= ref then kept[#kept + 1] = f end end
  if #kept > 0 then redis.call('HSET', FOLLOWERS, ck, table.concat(kept, '\n')) else redis.call('HDEL', FOLLOWERS, ck) end
end
local function abortBuild(bid, status, err, out)
  local bk = must('b:'..bid)
  if redis.call('HGET', bk, 'state') ~= 'running' then return end
  redis.call('HSET', bk, 'state', status, 'error', err, 'finishedAt', ARGV[2])
  for _, ref in ipairs(redis.call('LRANGE', must('bs:'..bid), 0, -1)) do
    local sk = must('s:'..ref)
    local v = redis.call('HMGET', sk, 'state', 'queue', 'jobId', 'tenant', 'cacheKey', 'readyAs')
    local s = v[1]
    if LIVE[s] then
      redis.call('HSET', sk, 'state', 'cancelled')
      release(sk)
      if s == 'ready' then
        redis.call('ZREM', must('tr:'..v[4]), v[6] or ref)
        dropClaim(ref, v[4])
      end
      if (s == 'queued' or s == 'running') and v[2] and v[3] then
        out.jobs[#out.jobs + 1] = v[2]
        out.jobs[#out.jobs + 1] = v[3]
      end
      if s == 'deduped' then unfollow(v[5], ref) end
      requeueFollowers(ref, sk)
    end
  end
  emit(bid, {'type', 'build-'..status, 'error', err})
  expireBuild(bid)
  out.builds[#out.builds + 1] = bid
end
