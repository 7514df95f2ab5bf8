-- running -> done. ARGV[4..8]: ref, worker, emulated, result (JSON), job id. Declared by the
-- caller: the stage's hash (s:), the worker's (w:); asked for when they matter: its dependents,
-- its tenant's ready set, its build's keys, and its followers' (stages of other builds waiting on
-- its cache key). Returns 1, or 0 for a stale report.
local ref, worker, emulated, result, jobId = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local sk, wk = must('s:'..ref), must('w:'..worker)
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'cacheKey')
local current = v[1] == 'running' and v[2] == jobId and v[3] == worker
if current then
  planDone(ref, sk)
  for _, f in ipairs(followersOf(v[4], ref)) do
    local fk = key('s:'..f)
    if fk and redis.call('HGET', fk, 'state') == 'deduped' then planDone(f, fk) end
  end
  if #NEED > 0 then return asked() end
end
workerDone(wk)
if not current then
  -- a stale report (the stage moved on to another worker) must not free its tenant slot
  if v[1] ~= 'running' and v[1] ~= 'queued' then release(sk) end
  return 0
end
release(sk)
redis.call('HSET', sk, 'state', 'done', 'result', result, 'finishedAt', ARGV[2])
local s = redis.call('HMGET', sk, 'build', 'platform', 'stage')
emit(s[1], {'type', 'stage-completed', 'platform', s[2], 'stage', s[3], 'worker', worker, 'emulated', emulated, 'result', result})
resolveDone(ref, sk, worker, result)
for _, f in ipairs(takeFollowers(v[4], ref)) do
  local fk = must('s:'..f)
  if redis.call('HGET', fk, 'state') == 'deduped' then
    redis.call('HSET', fk, 'state', 'done', 'result', result, 'worker', worker, 'emulated', emulated,
      'dedupedFrom', ref, 'finishedAt', ARGV[2])
    local fs = redis.call('HMGET', fk, 'build', 'platform', 'stage')
    emit(fs[1], {'type', 'stage-completed', 'platform', fs[2], 'stage', fs[3], 'worker', worker, 'emulated', emulated,
      'result', result, 'dedupedFrom', ref})
    resolveDone(f, fk, worker, result)
  end
end
return 1
