-- Moves ready stages into dispatch while their tenant is under its limit. A stage whose cache
-- key is already in flight becomes a follower of that leader instead (SET NX marker).
-- Only tenants that may claim are visited: one at its limit moves to P:tenants:held until a
-- slot of its own frees (release) or the fleet share grows, so a completion costs O(1) tenants.
-- A limit is a number (0 = none) or 'fleet': unlimited while no other tenant waits, else an
-- equal share of the live slots (P:config liveSlots, counted by the registry scripts).
-- Returns one JSON object per claimed stage: what placement needs. ARGV[5] the claimer's id,
-- ARGV[6] its lease (ms): a claimed stage records its claimer and joins P:claimed (recover.lua).
-- Declared: the fixed keys only. Which tenants, ready stages, in-flight markers and builds it
-- touches is decided by what it reads (see prelude.lua for why that holds on a Redis Cluster).
-- Nothing ready (a held tenant gets back into P:tenants when one of its slots frees).
if redis.call('SCARD', TENANTS) == 0 then return {} end
local cfg = redis.call('HMGET', CONFIG, 'tenantLimit', 'liveSlots', 'lastShare')
local defaultLimit = cfg[1] or ARGV[3]
local slots = tonumber(cfg[2] or '0')
local maxClaims = tonumber(ARGV[4])
local claimer, lease = ARGV[5], ARGV[6]
local tk, hk = TENANTS, HELD
local waiting = redis.call('SCARD', tk) + redis.call('SCARD', hk)
local share = 0
if waiting > 1 and slots > 0 then share = math.max(1, math.ceil(slots / waiting)) end
local last = tonumber(cfg[3] or '0')
if share ~= last then
  -- a larger share (0 = unlimited) may let held tenants claim again
  if share == 0 or (last ~= 0 and share > last) then
    redis.call('SUNIONSTORE', tk, tk, hk)
    redis.call('DEL', hk)
  end
  redis.call('HSET', CONFIG, 'lastShare', share)
end
local function limitOf(t)
  local l = redis.call('GET', P..':tenant:'..t..':limit') or defaultLimit
  if l == 'fleet' then return share end
  return tonumber(l) or 0
end
local function info(ref, sk)
  local v = redis.call('HMGET', sk, 'build', 'platform', 'stage', 'tenant', 'prio', 'cacheKey', 'dispatches', 'deps', 'runPlatform')
  local inputs = {}
  for _, d in ipairs(split(v[8])) do
    local w = redis.call('HGET', skey(d), 'worker')
    if w then inputs[#inputs + 1] = w end
  end
  return cjson.encode({ref = ref, build = v[1], platform = v[2], run = v[9] or v[2], stage = v[3], tenant = v[4], prio = v[5],
    cacheKey = v[6], dispatches = v[7], inputs = inputs, trace = redis.call('HGET', bkey(v[1]), 'trace') or ''})
end
local out = {}
for _, t in ipairs(redis.call('SMEMBERS', tk)) do
  if #out >= maxClaims then break end
  local rk = P..':tenant:'..t..':ready'
  local ak = P..':tenant:'..t..':active'
  local limit = limitOf(t)
  while #out < maxClaims do
    if limit > 0 and tonumber(redis.call('GET', ak) or '0') >= limit then
      redis.call('SMOVE', tk, hk, t)
      break
    end
    local top = redis.call('ZPOPMIN', rk)
    if #top == 0 then redis.call('SREM', tk, t) break end
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
        -- recover.lua gives it back if this claimer dies before its job is added
        redis.call('HSET', sk, 'state', 'dispatching', 'counted', '1', 'claimer', claimer)
        redis.call('SADD', P..':claimed', ref)
        redis.call('INCR', ak)
        redis.call('HINCRBY', sk, 'dispatches', 1)
        out[#out + 1] = info(ref, sk)
      end
    end
  end
end
-- the claimer's lease: while it lives, recover.lua leaves these stages to it
if #out > 0 then redis.call('SET', P..':claimer:'..claimer, '1', 'PX', lease) end
return out
