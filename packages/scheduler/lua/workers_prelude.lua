-- Worker registry helpers. Liveness is a heartbeat expiry on Redis's own clock in
-- P:workers:beats (BEATS), so clients' clocks never matter and dead workers are one range query away.
-- A worker's platform and idle sets are named by the platforms in its hash (read at run time).
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
local function platformsOf(id)
  local v = redis.call('HMGET', P..':worker:'..id, 'nativePlatforms', 'emulatedPlatforms')
  return decodeList(v[1]), decodeList(v[2])
end
-- Lists the worker in (expiry) or out of (nil) its platforms' live sets.
local function setPlatformLiveFrom(id, native, emulated, expiry)
  for cls, list in pairs({native = native, emulated = emulated}) do
    for _, p in ipairs(list) do
      local k = P..':platform:'..p..':'..cls
      if expiry then redis.call('ZADD', k, expiry, id) else redis.call('ZREM', k, id) end
    end
  end
end
local function setPlatformLive(id, expiry)
  local native, emulated = platformsOf(id)
  setPlatformLiveFrom(id, native, emulated, expiry)
end
-- The slots the 'fleet' tenant share divides (P:config liveSlots): the capacities of registered,
-- not draining workers, counted as they register, drain, undrain and leave (never by a scan).
local function addSlots(n)
  if redis.call('HINCRBY', CONFIG, 'liveSlots', n) < 0 then redis.call('HSET', CONFIG, 'liveSlots', 0) end
end
-- Takes the worker out of the idle sets of every queue it consumes (it must not be woken).
local function forgetIdle(id)
  local native, emulated = platformsOf(id)
  redis.call('SREM', P..':idle:'..workerQueue(id), id)
  for _, p in ipairs(native) do redis.call('SREM', P..':idle:'..platformQueue(p, 'native'), id) end
  for _, p in ipairs(emulated) do redis.call('SREM', P..':idle:'..platformQueue(p, 'emulated'), id) end
end
