-- dispatching -> queued (or re-queued by the sweeper); 0 means "do not add the job".
-- KEYS[7] the stage's hash, KEYS[8] its build's event stream, KEYS[9] the claimed set, KEYS[10]
-- the caller's lease. ARGV[6] the caller's id, ARGV[7] its lease (ms), ARGV[8] 'd' for a claim
-- of this caller (then the stage must still be dispatching under it: a claim recovered from a
-- caller whose lease expired belongs to whoever claimed it again) or 'r' for a re-homed stage.
local ref, queue, jobId, claimer, lease, kind = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local sk = KEYS[7]
local v = redis.call('HMGET', sk, 'state', 'claimer')
local s = v[1]
if kind == 'd' then
  if s ~= 'dispatching' or v[2] ~= claimer then return 0 end
elseif s ~= 'dispatching' and s ~= 'queued' and s ~= 'running' then
  return 0
end
redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId, 'claimer', claimer)
-- until the caller has added the job (it then removes the stage): recover.lua's watch list
redis.call('SADD', KEYS[9], ref)
redis.call('SET', KEYS[10], '1', 'PX', lease)
local p = redis.call('HMGET', sk, 'platform', 'stage')
redis.call('XADD', KEYS[8], '*', 'type', 'stage-queued', 'platform', p[1], 'stage', p[2], 'queue', queue)
return 1
