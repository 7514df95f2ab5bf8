-- Refreshes a worker's liveness; returns -1 when it is not registered (it must register again),
-- else its drain flag (1/0), so the worker never reads the flag on its own. ARGV[4..7]: id, ttl,
-- then running and cache bytes, '' when unchanged since its last beat: an idle worker writes
-- only its time. Declared: its hash (w:); asked for: its platforms' live sets.
local id, ttl = ARGV[4], tonumber(ARGV[5])
local wk = must('w:'..id)
local v = redis.call('HMGET', wk, 'capacity', 'draining', 'nativePlatforms', 'emulatedPlatforms')
if not v[1] then return -1 end
local native, emulated = decodeList(v[3]), decodeList(v[4])
if v[2] ~= '1' then
  planWorker(id, native, emulated, false)
  if #NEED > 0 then return asked() end
end
-- 'running' itself is counted atomically by the stage scripts; a heartbeat's snapshot would race
-- with them, so it is kept apart for display.
if ARGV[6] ~= '' then
  redis.call('HSET', wk, 'lastHeartbeat', ARGV[2], 'reportedRunning', ARGV[6], 'cacheBytes', ARGV[7])
else
  redis.call('HSET', wk, 'lastHeartbeat', ARGV[2])
end
local expiry = nowMs() + ttl
redis.call('ZADD', BEATS, expiry, id)
if v[2] == '1' then return 1 end
setPlatformLiveFrom(id, native, emulated, expiry)
return 0
