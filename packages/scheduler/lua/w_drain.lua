-- Sets a worker's drain flag (ARGV[5] 1/0; ARGV[4] its id) and tells it at once on its wake
-- channel; a draining worker leaves its platforms' live sets, the idle sets and the live slots,
-- so it is neither placed on nor woken, and the scheduler's tick re-homes what was queued on it.
-- Declared: its hash (w:); asked for: its platforms' live sets and its queues' idle sets.
local id, on = ARGV[4], ARGV[5]
local wk = must('w:'..id)
local v = redis.call('HMGET', wk, 'capacity', 'draining')
if not v[1] then return 0 end
local native, emulated = platformsOf(wk)
planWorker(id, native, emulated, on == '1')
if #NEED > 0 then return asked() end
local was = v[2] == '1'
redis.call('HSET', wk, 'draining', on)
if on == '1' then
  setPlatformLiveFrom(id, native, emulated, nil)
  forgetIdle(id, native, emulated)
  redis.call('SADD', DRAINING, id)
  if not was then addSlots(-tonumber(v[1])) end
  redis.call('PUBLISH', P..':wake:'..id, 'drain')
else
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > nowMs() then setPlatformLiveFrom(id, native, emulated, tonumber(exp)) end
  redis.call('SREM', DRAINING, id)
  if was then addSlots(tonumber(v[1])) end
  redis.call('PUBLISH', P..':wake:'..id, 'undrain')
end
return 1
