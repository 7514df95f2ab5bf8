-- queued -> running on a worker. ARGV[4..7]: ref, worker, emulated (1/0), job id. Declared: the
-- stage's hash (s:), the worker's (w:), the build's hash (b:) and events (be:); asked for: the
-- hash of a worker that stalled on it. Its inputs' results are in its own hash (resolveDone).
-- Returns {'skip', state} or {'ok', attempt, tenant, cacheKey, payload, trace, dependents,
-- then per input its stage id and result}.
local ref, worker, emulated, jobId = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local sk = must('s:'..ref)
local v = redis.call('HMGET', sk, 'state', 'jobId', 'worker', 'build')
if (v[1] ~= 'queued' and v[1] ~= 'running') or v[2] ~= jobId then return {'skip', v[1] or 'missing'} end
-- a restart after a stall: the dead worker's count no longer includes it
local stalled = v[1] == 'running' and v[3] and v[3] ~= '' and v[3] ~= worker and v[3]
if stalled then
  key('w:'..stalled)
  if #NEED > 0 then return asked() end
  workerDone(must('w:'..stalled))
end
local wk = must('w:'..worker)
local attempt = redis.call('HINCRBY', sk, 'attempts', 1)
redis.call('HSET', sk, 'state', 'running', 'worker', worker, 'emulated', emulated, 'startedAt', ARGV[2])
if redis.call('EXISTS', wk) == 1 then redis.call('HINCRBY', wk, 'running', 1) end
local f = redis.call('HMGET', sk, 'tenant', 'cacheKey', 'payload', 'deps', 'platform', 'stage', 'dependents')
emit(v[4], {'type', 'stage-started', 'platform', f[5], 'stage', f[6], 'worker', worker, 'emulated', emulated, 'attempt', attempt})
local out = {'ok', tostring(attempt), f[1] or '', f[2] or '', f[3] or 'null', redis.call('HGET', must('b:'..v[4]), 'trace') or '{}', f[7] or ''}
local deps = split(f[4])
if #deps > 0 then
  local fields = {}
  for i, d in ipairs(deps) do fields[i] = 'r:'..d end
  local results = redis.call('HMGET', sk, unpack(fields))
  for i, d in ipairs(deps) do
    out[#out + 1] = string.match(d, '([^|]*)$')
    out[#out + 1] = results[i] or 'null'
  end
end
return out
