-- Worker registry helpers. Liveness is a heartbeat expiry on Redis's own clock in BEATS
-- (P:workers:beats), so clients' clocks never matter and dead workers are one range query away.
-- A worker's platform sets (pn:<platform>, pe:<platform>) and idle sets (idle:<queue>) are named
-- by the platforms in its hash: asked for (prelude.lua) by planWorker.
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- contracts' queueSafe/platformQueueName/workerQueueName, for the idle sets of a worker's queues
local function queueSafe(s) return (string.gsub(s, '[^%w_%.%-]', '-')) end
local function workerQueue(id) return 'stages-w-'..queueSafe(id) end
local function platformQueue(p, cls) return 'stages-'..queueSafe(p)..'-'..cls end
local function decodeList(text)
  local ok, list = pcall(cjson.decode, text or '[]')
  if ok and type(list) == 'table' then return list end
  return {}
end
-- The platforms in a worker's hash (declared): native, emulated.
local function platformsOf(wk)
  local v = redis.call('HMGET', wk, 'nativePlatforms', 'emulatedPlatforms')
  return decodeList(v[1]), decodeList(v[2])
end
-- Asks for the platform sets of the given platforms and, with idle, the idle sets of the worker's queues.
local function planWorker(id, native, emulated, idle)
  for _, p in ipairs(native) do key('pn:'..p); if idle then key('idle:'..platformQueue(p, 'native')) end end
  for _, p in ipairs(emulated) do key('pe:'..p); if idle then key('idle:'..platformQueue(p, 'emulated')) end end
  if idle then key('idle:'..workerQueue(id)) end
end
-- Lists the worker in (expiry) or out of (nil) its platforms' live sets.
local function setPlatformLiveFrom(id, native, emulated, expiry)
  for cls, list in pairs({pn = native, pe = emulated}) do
    for _, p in ipairs(list) do
      local k = must(cls..':'..p)
      if expiry then redis.call('ZADD', k, expiry, id) else redis.call('ZREM', k, id) end
    end
  end
end
-- The slots the 'fleet' tenant share divides (CONFIG liveSlots): the capacities of registered,
-- not draining workers, counted as they register, drain, undrain and leave (never by a scan).
local function addSlots(n)
  if redis.call('HINCRBY', CONFIG, 'liveSlots', n) < 0 then redis.call('HSET', CONFIG, 'liveSlots', 0) end
end
-- Takes the worker out of the idle sets of every queue it consumes (it must not be woken).
local function forgetIdle(id, native, emulated)
  redis.call('SREM', must('idle:'..workerQueue(id)), id)
  for _, p in ipairs(native) do redis.call('SREM', must('idle:'..platformQueue(p, 'native')), id) end
  for _, p in ipairs(emulated) do redis.call('SREM', must('idle:'..platformQueue(p, 'emulated')), id) end
end
