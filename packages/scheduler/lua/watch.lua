-- Before re-homing stages off a dead or draining worker's queue (removing their jobs there),
-- the caller puts them in CLAIMED under its lease: if it dies between removing a job and
-- queueing the stage again, recover.lua finds the stage's job gone and gives it back to ready.
-- ARGV[4] the caller's id, ARGV[5] its lease (ms), ARGV[6..] ref, job id pairs: a stage is
-- watched only while that job is still its job (queued or running). Declared: each stage's hash
-- (s:), the caller's lease (lease:). Returns the refs watched.
local claimer = ARGV[4]
local out = {}
for i = 6, #ARGV - 1, 2 do
  local ref, jobId = ARGV[i], ARGV[i + 1]
  local v = redis.call('HMGET', must('s:'..ref), 'state', 'jobId')
  if (v[1] == 'queued' or v[1] == 'running') and v[2] == jobId then
    redis.call('HSET', CLAIMED, ref, claimer)
    out[#out + 1] = ref
  end
end
if #out > 0 then redis.call('SET', must('lease:'..claimer), '1', 'PX', ARGV[5]) end
return out
