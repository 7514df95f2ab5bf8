-- The consumer gave up a stage that was cancelled under it (or whose lock it lost).
local ref, worker = ARGV[3], ARGV[4]
workerDone(worker)
local s = redis.call('HGET', skey(ref), 'state')
if s ~= 'running' and s ~= 'queued' then release(ref) end
return 1
