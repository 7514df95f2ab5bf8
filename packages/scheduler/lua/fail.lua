-- A real failure: the stage, its followers and their builds fail; siblings are cancelled.
-- ARGV[4..7]: ref, worker, error, job id. Declared by the caller: the stage's hash (s:), the
-- worker's (w:); asked for when they matter: what failing its build and its followers' builds
-- touches (see planAbort). Returns {1, builds, jobs} ({0, {}, {}} for a stale report).
local ref, worker, err, jobId = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local sk, wk = must('s:'..ref), must('w:'..worker)
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'cacheKey', 'build')
local current = v[1] == 'running' and v[2] == jobId and v[3] == worker
if current then
  for _, f in ipairs(followersOf(v[4], ref)) do
    local fk = key('s:'..f)
    if fk and redis.call('HGET', fk, 'state') == 'deduped' then
      key('be:'..buildOf(f))
      planAbort(buildOf(f))
    end
  end
  key('be:'..v[5])
  planAbort(v[5])
  if #NEED > 0 then return asked() end
end
workerDone(wk)
local out = { builds = {}, jobs = {} }
if not current then
  if v[1] ~= 'running' and v[1] ~= 'queued' then release(sk) end
  return {0, {}, {}}
end
release(sk)
redis.call('HSET', sk, 'state', 'failed', 'error', err, 'finishedAt', ARGV[2])
local b, p, st = v[5], unpack(redis.call('HMGET', sk, 'platform', 'stage'))
emit(b, {'type', 'stage-failed', 'platform', p, 'stage', st, 'worker', worker, 'error', err})
for _, f in ipairs(takeFollowers(v[4], ref)) do
  local fk = must('s:'..f)
  if redis.call('HGET', fk, 'state') == 'deduped' then
    redis.call('HSET', fk, 'state', 'failed', 'error', err, 'dedupedFrom', ref, 'finishedAt', ARGV[2])
    local fs = redis.call('HMGET', fk, 'build', 'platform', 'stage')
    emit(fs[1], {'type', 'stage-failed', 'platform', fs[2], 'stage', fs[3], 'error', err, 'dedupedFrom', ref})
    abortBuild(fs[1], 'failed', 'stage '..fs[3]..' ('..fs[2]..') failed: '..err, out)
  end
end
abortBuild(b, 'failed', 'stage '..st..' ('..p..') failed: '..err, out)
return {1, out.builds, out.jobs}
