-- Moves ready stages into dispatch while their tenant is under its limit. A stage whose cache
-- key is already in flight becomes a follower of that leader instead (INFLIGHT, FOLLOWERS).
-- Only tenants that may claim are visited: one at its limit moves to HELD until a slot of its
-- own frees (release) or the fleet share grows, so a completion costs O(1) tenants.
-- A limit is a number (0 = none) or 'fleet': unlimited while no other tenant waits, else an
-- equal share of the live slots (CONFIG liveSlots, counted by the registry scripts).
-- ARGV[4] the default limit, ARGV[5] the most stages to claim, ARGV[6] the claimer's id, ARGV[7]
-- its lease (ms): a claimed stage records its claimer and joins CLAIMED (recover.lua).
-- Declared by the caller: the claimer's lease (lease:) and what it expects to need; asked for:
-- each visited tenant's ready set (tr:) and limit (tl:), and per stage at the head of a ready
-- set its hash (s:) and its build's hash and events (b:, be:).
-- Returns one JSON object per claimed stage: what placement needs.
-- Nothing ready (a held tenant gets back into TENANTS when one of its slots frees).
if redis.call('SCARD', TENANTS) == 0 then return {} end
local cfg = redis.call('HMGET', CONFIG, 'tenantLimit', 'liveSlots', 'lastShare')
local defaultLimit = cfg[1] or ARGV[4]
local slots = tonumber(cfg[2] or '0')
local maxClaims = tonumber(ARGV[5])
local claimer, lease = ARGV[6], ARGV[7]
local waiting = redis.call('SCARD', TENANTS) + redis.call('SCARD', HELD)
local share = 0
if waiting > 1 and slots > 0 then share = math.max(1, math.ceil(slots / waiting)) end
local last = tonumber(cfg[3] or '0')
-- a larger share (0 = unlimited) may let held tenants claim again
local unite = share ~= last and (share == 0 or (last ~= 0 and share > last))
local tenants = redis.call('SMEMBERS', TENANTS)
if unite then for _, t in ipairs(redis.call('SMEMBERS', HELD)) do tenants[#tenants + 1] = t end end

-- Decide (reads only): per tenant the head stages it takes, and whether it is then held or empty.
local plan = {}
local claims = 0
local leads = {} -- cache keys led by stages this call claims
for _, t in ipairs(tenants) do
  if claims >= maxClaims then break end
  local rk, lk = key('tr:'..t), key('tl:'..t)
  if rk and lk then
    local l = redis.call('GET', lk) or defaultLimit
    local limit = l == 'fleet' and share or (tonumber(l) or 0)
    local active = tonumber(redis.call('HGET', ACTIVE, t) or '0')
    local tp = { t = t, rk = rk, stages = {} }
    plan[#plan + 1] = tp
    local batch, bi, off = {}, 0, 0
    while claims < maxClaims do
      if limit > 0 and active >= limit then tp.after = 'hold' break end
      bi = bi + 1
      if bi > #batch then
        local n = math.max(maxClaims - claims, 1) + 4
        batch, bi = redis.call('ZRANGE', rk, off, off + n - 1), 1
        off = off + n
      end
      local ref = batch[bi]
      if not ref then tp.after = 'empty' break end
      local sk = key('s:'..ref)
      local bid = buildOf(ref)
      key('b:'..bid)
      key('be:'..bid)
      if not sk then
        -- counted as claimed: the next call asks for as many stages as this tenant may take
        active, claims = active + 1, claims + 1
      else
        local v = redis.call('HMGET', sk, 'state', 'cacheKey')
        local ck = v[2] or ''
        local leader = nil
        if v[1] == 'ready' and ck ~= '' then leader = leads[ck] or redis.call('HGET', INFLIGHT, ck) end
        if v[1] ~= 'ready' then
          tp.stages[#tp.stages + 1] = { ref, sk, 'drop' }
        elseif leader and leader ~= ref then
          tp.stages[#tp.stages + 1] = { ref, sk, 'follow', ck, leader }
        else
          if ck ~= '' then leads[ck] = ref end
          tp.stages[#tp.stages + 1] = { ref, sk, 'claim', ck }
          active, claims = active + 1, claims + 1
        end
      end
    end
  end
end
if #NEED > 0 then return asked() end

-- Act.
if share ~= last then
  if unite then
    redis.call('SUNIONSTORE', TENANTS, TENANTS, HELD)
    redis.call('DEL', HELD)
  end
  redis.call('HSET', CONFIG, 'lastShare', share)
end
local function info(ref, sk)
  local v = redis.call('HMGET', sk, 'build', 'platform', 'stage', 'tenant', 'prio', 'cacheKey', 'dispatches', 'deps', 'runPlatform')
  local inputs = {}
  local deps = split(v[8])
  if #deps > 0 then
    local fields = {}
    for i, d in ipairs(deps) do fields[i] = 'w:'..d end
    for _, w in ipairs(redis.call('HMGET', sk, unpack(fields))) do
      if w then inputs[#inputs + 1] = w end
    end
  end
  return cjson.encode({ref = ref, build = v[1], platform = v[2], run = v[9] or v[2], stage = v[3], tenant = v[4], prio = v[5],
    cacheKey = v[6], dispatches = v[7], inputs = inputs, trace = redis.call('HGET', must('b:'..v[1]), 'trace') or ''})
end
local out = {}
for _, tp in ipairs(plan) do
  for _, st in ipairs(tp.stages) do
    local ref, sk, what = st[1], st[2], st[3]
    redis.call('ZREM', tp.rk, ref)
    if what == 'follow' then
      local ck, leader = st[4], st[5]
      redis.call('HSET', sk, 'state', 'deduped', 'leader', leader)
      local fl = redis.call('HGET', FOLLOWERS, ck)
      redis.call('HSET', FOLLOWERS, ck, fl and (fl..'\n'..ref) or ref)
      local s = redis.call('HMGET', sk, 'platform', 'stage')
      emit(buildOf(ref), {'type', 'stage-deduped', 'platform', s[1], 'stage', s[2], 'leader', leader})
    elseif what == 'claim' then
      if st[4] ~= '' then redis.call('HSETNX', INFLIGHT, st[4], ref) end
      -- recover.lua gives it back if this claimer dies before its job is added
      redis.call('HSET', sk, 'state', 'dispatching', 'counted', '1', 'claimer', claimer)
      redis.call('SADD', CLAIMED, ref)
      redis.call('HINCRBY', ACTIVE, tp.t, 1)
      redis.call('HINCRBY', sk, 'dispatches', 1)
      out[#out + 1] = info(ref, sk)
    end
  end
  if tp.after == 'hold' then redis.call('SMOVE', TENANTS, HELD, tp.t)
  elseif tp.after == 'empty' then redis.call('SREM', TENANTS, tp.t) end
end
-- the claimer's lease: while it lives, recover.lua leaves these stages to it
if #out > 0 then redis.call('SET', must('lease:'..claimer), '1', 'PX', lease) end
return out
