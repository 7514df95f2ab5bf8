-- The consumer gave up a stage that was cancelled under it (or whose lock it lost).
-- KEYS[7] the stage's hash, KEYS[8] the worker's hash; its tenant's keys are reached at run time.
local ref, worker = ARGV[3], ARGV[4]
workerDone(worker, KEYS[8])
local s = redis.call('HGET', KEYS[7], 'state')
if s ~= 'running' and s ~= 'queued' then release(ref) end
return 1
