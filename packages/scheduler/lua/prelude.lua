-- Shared helpers, prepended to every script. KEYS[1..6] are the scheduler's fixed keys (FIXED_KEYS
-- in StageStore.ts, in this order); each script's own keys follow from KEYS[7] (see its header).
-- ARGV[1] is the key prefix, `{prefix}`, ARGV[2] the time.
-- Keys a script can know only once it runs (a stage's dependents, the followers of a cache key,
-- a tenant's ready set, a worker's platforms) are built here from that prefix: they cannot be
-- passed in KEYS because they are read from the state the script changes, atomically. They are
-- correct on a Redis Cluster because the prefix is a hash tag: every scheduler key hashes to the
-- slot of the declared ones, and Redis lets a script touch undeclared keys of its own slot.
local P = ARGV[1]
local CONFIG, TENANTS, HELD, SEQ, BEATS, DRAINING = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local function skey(ref) return P..':stage:'..ref end
local function bkey(bid) return P..':build:'..bid end
local function split(s)
  local t = {}
  if s and s ~= '' then for x in string.gmatch(s, '[^\n]+') do t[#t+1] = x end end
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
    -- a tenant held at its limit may claim again
    redis.call('SMOVE', HELD, TENANTS, t)
  end
end
-- wk when the caller declared the worker's hash, else from its id (a worker named by a record)
local function workerDone(worker, wk)
  if worker and worker ~= '' then
    wk = wk or P..':worker:'..worker
    if redis.call('EXISTS', wk) == 1 then
      local n = redis.call('HINCRBY', wk, 'running', -1)
      if n < 0 then redis.call('HSET', wk, 'running', 0) end
    end
  end
end
-- sk and readyKey when the caller declared them, else from the stage's record
local function makeReady(ref, sk, readyKey)
  sk = sk or skey(ref)
  local v = redis.call('HMGET', sk, 'tenant', 'prio')
  redis.call('HSET', sk, 'state', 'ready')
  local seq = redis.call('INCR', SEQ)
  -- higher priority first, then first come first served
  redis.call('ZADD', readyKey or (P..':tenant:'..v[1]..':ready'), (1000 - tonumber(v[2])) * 1099511627776 + seq, ref)
  -- a tenant held at its limit stays held until one of its slots frees (see release)
  if redis.call('SISMEMBER', HELD, v[1]) == 0 then redis.call('SADD', TENANTS, v[1]) end
end
-- finished builds stay readable for P:config retentionSec (set by the Scheduler), then expire
local function expireBuild(bid)
  local ttl = tonumber(redis.call('HGET', CONFIG, 'retentionSec') or '0')
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
