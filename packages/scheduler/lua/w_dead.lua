-- Registered workers whose heartbeat expired while Redis kept answering (the sweep: Scheduler.tick).
-- ARGV[4]: the heartbeat TTL (ms); ARGV[5]: the longest pause between two sweeps (ms) that is not
-- an outage. Sweeps come every second or so, from every scheduler; a longer pause means Redis
-- answered nobody (a restart, a failover), and heartbeats could not be written then either. An
-- expiry that fell in such a pause is no worker's fault: until a TTL has passed since sweeps
-- resumed (by then every live worker has beaten again), only workers that had expired before
-- the pause are swept. Without this, the first sweep after a failover longer than the TTL took
-- every worker for dead and ran their running stages again elsewhere.
local ttl, pause = tonumber(ARGV[4]), tonumber(ARGV[5])
local now = nowMs()
local v = redis.call('HMGET', CONFIG, 'sweptAt', 'sweepsSince', 'pauseFrom')
local sweptAt, since, from = tonumber(v[1]), tonumber(v[2]), tonumber(v[3])
if not sweptAt or not since or not from or now - sweptAt > pause then
  -- The first sweep of all has no pause to forgive.
  since, from = now, sweptAt or now
  redis.call('HSET', CONFIG, 'sweepsSince', since, 'pauseFrom', from)
end
redis.call('HSET', CONFIG, 'sweptAt', now)
if now - since < ttl then return redis.call('ZRANGEBYSCORE', BEATS, '-inf', '('..from) end
return redis.call('ZRANGEBYSCORE', BEATS, '-inf', now)
