-- Refreshes a worker's liveness; returns -1 when it is not registered (it must register again),
-- else its drain flag (1/0), so the worker never reads the flag on its own.
local id, ttl = ARGV[3], tonumber(ARGV[4])
local wk = P..':worker:'..id
if redis.call('EXISTS', wk) == 0 then return -1 end
-- 'running' itself is counted atomically by the stage scripts; a heartbeat's snapshot would race
-- with them, so it is kept apart for display.
redis.call('HSET', wk, 'reportedRunning', ARGV[5], 'cacheBytes', ARGV[6], 'lastHeartbeat', ARGV[2])
local expiry = nowMs() + ttl
redis.call('ZADD', BEATS, expiry, id)
if redis.call('HGET', wk, 'draining') == '1' then return 1 end
setPlatformLive(id, expiry)
return 0
