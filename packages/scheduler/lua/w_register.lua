-- (Re-)registers a worker: its hash, its heartbeat expiry and, unless draining, its platforms and slots.
-- ARGV[4..11]: id, ttl, native and emulated platforms (JSON), capacity, cache bytes, version,
-- draining (1/0). Declared: its hash (w:); asked for: the platform and idle sets of its old
-- hash's platforms (it leaves them) and the platform sets of its new ones.
local id, ttl, draining = ARGV[4], tonumber(ARGV[5]), ARGV[11]
local wk = must('w:'..id)
local old = redis.call('HMGET', wk, 'capacity', 'draining')
local oldNative, oldEmulated = platformsOf(wk)
local native, emulated = decodeList(ARGV[6]), decodeList(ARGV[7])
if old[1] then planWorker(id, oldNative, oldEmulated, true) end
if draining ~= '1' then planWorker(id, native, emulated, false) end
if #NEED > 0 then return asked() end
if old[1] then
  forgetIdle(id, oldNative, oldEmulated)
  setPlatformLiveFrom(id, oldNative, oldEmulated, nil)
  if old[2] ~= '1' then addSlots(-tonumber(old[1])) end
end
redis.call('DEL', wk)
redis.call('HSET', wk, 'nativePlatforms', ARGV[6], 'emulatedPlatforms', ARGV[7], 'capacity', ARGV[8],
  'cacheBytes', ARGV[9], 'version', ARGV[10], 'running', 0, 'draining', draining, 'registeredAt', ARGV[2],
  'lastHeartbeat', ARGV[2])
local expiry = nowMs() + ttl
redis.call('ZADD', BEATS, expiry, id)
if draining == '1' then
  redis.call('SADD', DRAINING, id)
else
  redis.call('SREM', DRAINING, id)
  addSlots(tonumber(ARGV[8]))
  setPlatformLiveFrom(id, native, emulated, expiry)
end
return 1
