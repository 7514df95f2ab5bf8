-- A real failure: the stage, its followers and their builds fail; siblings are cancelled.
-- KEYS[7] the stage's hash, KEYS[8] the reporting worker's hash.
-- Reached at run time (see prelude.lua): the stage's dependents, followers and tenant keys, its build's keys.
local ref, worker, err, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sk = KEYS[7]
workerDone(worker, KEYS[8])
local out = { builds = {}, jobs = {} }
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'cacheKey')
if v[1] ~= 'running' or v[2] ~= jobId or v[3] ~= worker then
  if v[1] ~= 'running' and v[1] ~= 'queued' and v[1] ~= 'dispatching' then release(ref) end
  return {0, {}, {}}
end
release(ref)
redis.call('HSET', sk, 'state', 'failed', 'error', err, 'finishedAt', ARGV[2])
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-failed', 'platform', p, 'stage', st, 'worker', worker, 'error', err})
for _, f in ipairs(takeFollowers(v[4], ref)) do
  local fk = skey(f)
  if redis.call('HGET', fk, 'state') == 'deduped' then
    redis.call('HSET', fk, 'state', 'failed', 'error', err, 'dedupedFrom', ref, 'finishedAt', ARGV[2])
    local fb, fp, fs = stageFields(f)
    emit(fb, {'type', 'stage-failed', 'platform', fp, 'stage', fs, 'error', err, 'dedupedFrom', ref})
    abortBuild(fb, 'failed', 'stage '..fs..' ('..fp..') failed: '..err, out)
  end
end
abortBuild(b, 'failed', 'stage '..st..' ('..p..') failed: '..err, out)
return {1, out.builds, out.jobs}
