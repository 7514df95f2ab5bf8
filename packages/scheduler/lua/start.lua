-- queued -> running on a worker. KEYS[7] the stage's hash, KEYS[8] the worker's hash, KEYS[9] the
-- build's hash, KEYS[10] its event stream. The inputs' hashes are the stage's dependencies as
-- recorded, and the hash of a worker that stalled on it the one it names: read at run time.
local ref, worker, emulated, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sk = KEYS[7]
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker')
if (v[1] ~= 'queued' and v[1] ~= 'running') or v[2] ~= jobId then return {'skip', v[1] or 'missing'} end
-- a restart after a stall: the dead worker's count no longer includes it
if v[1] == 'running' and v[3] ~= worker then workerDone(v[3]) end
local attempt = redis.call('HINCRBY', sk, 'attempts', 1)
redis.call('HSET', sk, 'state', 'running', 'worker', worker, 'emulated', emulated, 'startedAt', ARGV[2])
if redis.call('EXISTS', KEYS[8]) == 1 then redis.call('HINCRBY', KEYS[8], 'running', 1) end
local _, p, st = stageFields(ref)
redis.call('XADD', KEYS[10], '*', 'type', 'stage-started', 'platform', p, 'stage', st, 'worker', worker, 'emulated', emulated, 'attempt', attempt)
local f = redis.call('HMGET', sk, 'tenant', 'cacheKey', 'payload', 'deps')
local out = {'ok', tostring(attempt), f[1] or '', f[2] or '', f[3] or 'null', redis.call('HGET', KEYS[9], 'trace') or '{}'}
for _, d in ipairs(split(f[4])) do
  local dv = redis.call('HMGET', skey(d), 'stage', 'result')
  out[#out + 1] = dv[1] or d
  out[#out + 1] = dv[2] or 'null'
end
return out
