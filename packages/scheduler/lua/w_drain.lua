-- Sets a worker's drain flag (ARGV[4] 1/0) and tells it at once on its wake channel; a draining
-- worker leaves its platforms' live sets, the idle sets and the live slots, so it is neither
-- placed on nor woken, and the scheduler's tick re-homes what was queued on it.
-- KEYS[7] the worker's hash; its platform and idle sets are named by the platforms it holds.
local id, on = ARGV[3], ARGV[4]
local wk = KEYS[7]
local v = redis.call('HMGET', wk, 'capacity', 'draining')
if not v[1] then return 0 end
local was = v[2] == '1'
redis.call('HSET', wk, 'draining', on)
if on == '1' then
  setPlatformLive(id, nil)
  forgetIdle(id)
  redis.call('SADD', DRAINING, id)
  if not was then addSlots(-tonumber(v[1])) end
  redis.call('PUBLISH', P..':wake:'..id, 'drain')
else
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > nowMs() then setPlatformLive(id, tonumber(exp)) end
  redis.call('SREM', DRAINING, id)
  if was then addSlots(tonumber(v[1])) end
  redis.call('PUBLISH', P..':wake:'..id, 'undrain')
end
return 1
