-- Takes ready stages off their tenants' ready sets while each tenant is under its limit.
-- Only tenants that may claim are visited: one at its limit moves to HELD until a slot of its
-- own frees (release) or the fleet share grows, so a completion costs O(1) tenants.
-- A limit is a number (0 = none) or 'fleet': unlimited while no other tenant waits, else an
-- equal share of the live slots (CONFIG liveSlots, counted by the registry scripts).
-- ARGV[4] the default limit, ARGV[5] the most stages to claim, ARGV[6] the claimer's id, ARGV[7]
-- its lease (ms). A claimed stage takes a tenant slot and is recorded in CLAIMED (ref ->
-- claimer) under the claimer's lease; the claim touches no stage's own keys (which stage it
-- takes is known only here): mark_queued.lua queues it (or makes it a follower of a stage
-- already running its cache key), and recover.lua gives it back if the claimer dies first.
-- Declared: the claimer's lease (lease:); asked for: each visited tenant's ready set (tr:) and
-- limit (tl:). Returns the claimed stages' ready-set members: ref, newline, what placement
-- needs (JSON; see makeReady).
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
for _, t in ipairs(tenants) do
  key('tr:'..t)
  key('tl:'..t)
end
if #NEED > 0 then return asked() end
if share ~= last then
  if unite then
    redis.call('SUNIONSTORE', TENANTS, TENANTS, HELD)
    redis.call('DEL', HELD)
  end
  redis.call('HSET', CONFIG, 'lastShare', share)
end
local out = {}
for _, t in ipairs(tenants) do
  if #out >= maxClaims then break end
  local rk = must('tr:'..t)
  local l = redis.call('GET', must('tl:'..t)) or defaultLimit
  local limit = l == 'fleet' and share or (tonumber(l) or 0)
  local active = tonumber(redis.call('HGET', ACTIVE, t) or '0')
  local took = 0
  while #out < maxClaims do
    if limit > 0 and active + took >= limit then
      redis.call('SMOVE', TENANTS, HELD, t)
      break
    end
    local top = redis.call('ZPOPMIN', rk)
    if #top == 0 then redis.call('SREM', TENANTS, t) break end
    redis.call('HSET', CLAIMED, string.match(top[1], '^[^\n]*'), claimer)
    took = took + 1
    out[#out + 1] = top[1]
  end
  if took > 0 then redis.call('HINCRBY', ACTIVE, t, took) end
end
-- the claimer's lease: while it lives, recover.lua leaves these stages to it
if #out > 0 then redis.call('SET', must('lease:'..claimer), '1', 'PX', lease) end
return out
