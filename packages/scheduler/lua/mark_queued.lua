-- dispatching -> queued (or re-queued by the sweeper); 0 means "do not add the job".
local ref, queue, jobId = ARGV[3], ARGV[4], ARGV[5]
local sk = skey(ref)
local s = redis.call('HGET', sk, 'state')
if s ~= 'dispatching' and s ~= 'queued' and s ~= 'running' then return 0 end
redis.call('HSET', sk, 'state', 'queued', 'queue', queue, 'jobId', jobId)
local b, p, st = stageFields(ref)
emit(b, {'type', 'stage-queued', 'platform', p, 'stage', st, 'queue', queue})
return 1
