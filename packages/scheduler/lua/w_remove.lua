-- Forgets a worker. ARGV[4] its id. Declared: its hash (w:); asked for: its platforms' live sets
-- and its queues' idle sets.
local id = ARGV[4]
local wk = must('w:'..id)
local v = redis.call('HMGET', wk, 'capacity', 'draining')
if v[1] then
  local native, emulated = platformsOf(wk)
  planWorker(id, native, emulated, true)
  if #NEED > 0 then return asked() end
  forgetIdle(id, native, emulated)
  setPlatformLiveFrom(id, native, emulated, nil)
  if v[2] ~= '1' then addSlots(-tonumber(v[1])) end
end
redis.call('SREM', DRAINING, id)
redis.call('ZREM', BEATS, id)
redis.call('DEL', wk)
return 1
