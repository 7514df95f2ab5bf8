-- The consumer gave up a stage that was cancelled under it (or whose lock it lost).
-- ARGV[4..5]: ref, worker. Declared: the stage's hash (s:) and the worker's (w:).
local ref, worker = ARGV[4], ARGV[5]
local sk = must('s:'..ref)
workerDone(must('w:'..worker))
local s = redis.call('HGET', sk, 'state')
if s ~= 'running' and s ~= 'queued' then release(sk) end
return 1
