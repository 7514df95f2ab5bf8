local id = ARGV[3]
local v = redis.call('HMGET', P..':worker:'..id, 'capacity', 'draining')
if v[1] then
  forgetIdle(id)
  setPlatformLive(id, nil)
  if v[2] ~= '1' then addSlots(-tonumber(v[1])) end
end
redis.call('SREM', DRAINING, id)
redis.call('ZREM', BEATS, id)
redis.call('DEL', P..':worker:'..id)
return 1
