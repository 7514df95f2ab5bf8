-- dispatching -> queued (or re-queued by the sweeper); 0 means "do not add the job".
-- ARGV[4..9]: ref, queue, job id, the caller's id, its lease (ms), and 'd' for a claim of this
-- caller (then the stage must still be dispatching under it: a claim recovered from a caller
-- whose lease expired belongs to whoever claimed it again) or 'r' for a re-homed stage.
-- Declared: the stage's hash (s:), its build's events (be:), the caller's lease (lease:).
local ref, queue, jobId, claimer, lease, kind = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local sk = must('s:'..ref)
local v = redis.call('HMGET', sk, 'state', 'claimer')
local s = v[1]
if kind == 'd' then
  if s ~= 'dispatching' or v[2] ~= claimer then return 0 end
elseif s ~= 'dispatching' and s ~= 'queued' and s ~= 'running' then
  return 0
end
redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId, 'claimer', claimer)
-- until the caller has added the job (it then removes the stage): recover.lua's watch list
redis.call('SADD', CLAIMED, ref)
redis.call('SET', must('lease:'..claimer), '1', 'PX', lease)
local p = redis.call('HMGET', sk, 'platform', 'stage')
emit(buildOf(ref), {'type', 'stage-queued', 'platform', p[1], 'stage', p[2], 'queue', queue})
return 1
