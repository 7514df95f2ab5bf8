-- running -> done. KEYS[7] the stage's hash, KEYS[8] the reporting worker's hash.
-- Reached at run time (see prelude.lua): the stage's dependents, followers and tenant keys, its build's keys.
local ref, worker, emulated, result, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local sk = KEYS[7]
workerDone(worker, KEYS[8])
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'cacheKey')
if v[1] ~= 'running' or v[2] ~= jobId or v[3] ~= worker then
  -- a stale report (the stage moved on to another worker) must not free its tenant slot
  if v[1] ~= 'running' and v[1] ~= 'queued' and v[1] ~= 'dispatching' then release(ref) end
  return 0
end
release(ref)
redis.call('HSET', sk, 'state', 'done', 'result', result, 'finishedAt', ARGV[2])
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-completed', 'platform', p, 'stage', st, 'worker', worker, 'emulated', emulated, 'result', result})
resolveDone(ref)
for _, f in ipairs(takeFollowers(v[4], ref)) do
  local fk = skey(f)
  if redis.call('HGET', fk, 'state') == 'deduped' then
    redis.call('HSET', fk, 'state', 'done', 'result', result, 'worker', worker, 'emulated', emulated,
      'dedupedFrom', ref, 'finishedAt', ARGV[2])
    local fb, fp, fs = stageFields(f)
    emit(fb, {'type', 'stage-completed', 'platform', fp, 'stage', fs, 'worker', worker, 'emulated', emulated,
      'result', result, 'dedupedFrom', ref})
    resolveDone(f)
  end
end
return 1
