-- dispatching -> queued (or re-queued by the sweeper); 0 means "do not add the job".
-- KEYS[7] the stage's hash, KEYS[8] its build's event stream.
local ref, queue, jobId = ARGV[3], ARGV[4], ARGV[5]
local sk = KEYS[7]
local s = redis.call('HGET', sk, 'state')
if s ~= 'dispatching' and s ~= 'queued' and s ~= 'running' then return 0 end
redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId)
local v = redis.call('HMGET', sk, 'platform', 'stage')
redis.call('XADD', KEYS[8], '*', 'type', 'stage-queued', 'platform', v[1], 'stage', v[2], 'queue', queue)
return 1
