-- (Re-)registers a worker: its hash, its heartbeat expiry and, unless draining, its platforms and slots.
-- KEYS[7] the worker's hash. The platform and idle sets it leaves are those of its old hash.
local id, ttl, draining = ARGV[3], tonumber(ARGV[4]), ARGV[10]
local wk = KEYS[7]
local old = redis.call('HMGET', wk, 'capacity', 'draining')
if old[1] then
  forgetIdle(id)
  setPlatformLive(id, nil)
  if old[2] ~= '1' then addSlots(-tonumber(old[1])) end
end
redis.call('DEL', wk)
redis.call('HSET', wk, 'nativePlatforms', ARGV[5], 'emulatedPlatforms', ARGV[6], 'capacity', ARGV[7],
  'cacheBytes', ARGV[8], 'version', ARGV[9], 'running', 0, 'draining', draining, 'registeredAt', ARGV[2],
  'lastHeartbeat', ARGV[2])
local expiry = nowMs() + ttl
redis.call('ZADD', BEATS, expiry, id)
if draining == '1' then
  redis.call('SADD', DRAINING, id)
else
  redis.call('SREM', DRAINING, id)
  addSlots(tonumber(ARGV[7]))
  setPlatformLive(id, expiry)
end
return 1
