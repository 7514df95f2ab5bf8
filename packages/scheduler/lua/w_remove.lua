-- Forgets a worker. KEYS[7] its hash; its platform and idle sets are named by the platforms it holds.
local id, wk = ARGV[3], KEYS[7]
local v = redis.call('HMGET', wk, 'capacity', 'draining')
if v[1] then
  forgetIdle(id)
  setPlatformLive(id, nil)
  if v[2] ~= '1' then addSlots(-tonumber(v[1])) end
end
redis.call('SREM', DRAINING, id)
redis.call('ZREM', BEATS, id)
redis.call('DEL', wk)
return 1
