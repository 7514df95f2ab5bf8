-- (Re-)registers a worker: its hash, its heartbeat expiry and, unless draining, its platforms.
local id, ttl, draining = ARGV[3], tonumber(ARGV[4]), ARGV[10]
local wk = P..':worker:'..id
if redis.call('EXISTS', wk) == 1 then
  forgetIdle(id)
  setPlatformLive(id, nil)
end
redis.call('DEL', wk)
redis.call('HSET', wk, 'nativePlatforms', ARGV[5], 'emulatedPlatforms', ARGV[6], 'capacity', ARGV[7],
  'cacheBytes', ARGV[8], 'version', ARGV[9], 'running', 0, 'draining', draining, 'registeredAt', ARGV[2],
  'lastHeartbeat', ARGV[2])
local expiry = nowMs() + ttl
redis.call('ZADD', BEATS, expiry, id)
if draining ~= '1' then setPlatformLive(id, expiry) end
return 1
