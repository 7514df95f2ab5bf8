-- Refreshes a worker's liveness; returns -1 when it is not registered (it must register again),
-- else its drain flag (1/0), so the worker never reads the flag on its own. ARGV[5..6] (running,
-- cache bytes) are '' when unchanged since its last beat: an idle worker writes only its time.
-- KEYS[7] the worker's hash; its platform sets are named by the platforms it holds.
local id, ttl = ARGV[3], tonumber(ARGV[4])
local wk = KEYS[7]
local v = redis.call('HMGET', wk, 'capacity', 'draining', 'nativePlatforms', 'emulatedPlatforms')
if not v[1] then return -1 end
-- 'running' itself is counted atomically by the stage scripts; a heartbeat's snapshot would race
-- with them, so it is kept apart for display.
if ARGV[5] ~= '' then
  redis.call('HSET', wk, 'lastHeartbeat', ARGV[2], 'reportedRunning', ARGV[5], 'cacheBytes', ARGV[6])
else
  redis.call('HSET', wk, 'lastHeartbeat', ARGV[2])
end
local expiry = nowMs() + ttl
redis.call('ZADD', BEATS, expiry, id)
if v[2] == '1' then return 1 end
setPlatformLiveFrom(id, decodeList(v[3]), decodeList(v[4]), expiry)
return 0
