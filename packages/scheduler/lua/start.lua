local ref, worker, emulated, jobId = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local sk = skey(ref)
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker')
if (v[1] ~= 'queued' and v[1] ~= 'running') or v[2] ~= jobId then return {'skip', v[1] or 'missing'} end
-- a restart after a stall: the dead worker's count no longer includes it
if v[1] == 'running' and v[3] ~= worker then workerDone(v[3]) end
local attempt = redis.call('HINCRBY', sk, 'attempts', 1)
redis.call('HSET', sk, 'state', 'running', 'worker', worker, 'emulated', emulated, 'startedAt', ARGV[2])
if redis.call('EXISTS', P..':worker:'..worker) == 1 then redis.call('HINCRBY', P..':worker:'..worker, 'running', 1) end
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-started', 'platform', p, 'stage', st, 'worker', worker, 'emulated', emulated, 'attempt', attempt})
local f = redis.call('HMGET', sk, 'tenant', 'cacheKey', 'payload', 'deps')
local out = {'ok', tostring(attempt), f[1] or '', f[2] or '', f[3] or 'null', redis.call('HGET', bkey(b), 'trace') or '{}'}
for _, d in ipairs(split(f[4])) do
  local dv = redis.call('HMGET', skey(d), 'stage', 'result')
  out[#out + 1] = dv[1] or d
  out[#out + 1] = dv[2] or 'null'
end
return out
