-- A claimed stage is queued (or a re-homed one re-queued); returns 1 when the caller is to add
-- its job, 0 when not, 2 when the stage became a follower of the stage already running its
-- cache key (no job; its tenant slot is freed).
-- ARGV[4..9]: ref, queue, job id, the caller's id, its lease (ms), and 'd' for a stage this
-- caller claimed (it must still be its claim: one recovered from a caller whose lease expired
-- belongs to whoever claimed it again) or 'r' for a re-homed stage (queued or running).
-- Declared: the stage's hash (s:), its build's events (be:), the caller's lease (lease:).
-- Until the caller has added the job (jobsAdded), the stage stays in CLAIMED under its lease.
local ref, queue, jobId, claimer, lease, kind = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local sk = must('s:'..ref)
local v = redis.call('HMGET', sk, 'state', 'cacheKey', 'tenant', 'platform', 'stage', 'dispatches')
if kind == 'd' then
  if redis.call('HGET', CLAIMED, ref) ~= claimer then return 0 end
  if v[1] ~= 'ready' then
    dropClaim(ref, v[3])
    return 0
  end
  local ck = v[2] or ''
  if ck ~= '' then
    local leader = redis.call('HGET', INFLIGHT, ck)
    if leader and leader ~= ref then
      redis.call('HSET', sk, 'state', 'deduped', 'leader', leader)
      local fl = redis.call('HGET', FOLLOWERS, ck)
      redis.call('HSET', FOLLOWERS, ck, fl and (fl..'\n'..ref) or ref)
      emit(buildOf(ref), {'type', 'stage-deduped', 'platform', v[4], 'stage', v[5], 'leader', leader})
      dropClaim(ref, v[3])
      return 2
    end
    redis.call('HSET', INFLIGHT, ck, ref)
  end
  -- the stage holds its tenant slot from here (release), and counts this dispatch (its job id)
  redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId, 'claimer', claimer, 'counted', '1',
    'dispatches', tonumber(v[6] or '0') + 1)
elseif v[1] ~= 'queued' and v[1] ~= 'running' then
  return 0
else
  redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId, 'claimer', claimer)
  redis.call('HSET', CLAIMED, ref, claimer)
end
redis.call('SET', must('lease:'..claimer), '1', 'PX', lease)
emit(buildOf(ref), {'type', 'stage-queued', 'platform', v[4], 'stage', v[5], 'queue', queue})
return 1
