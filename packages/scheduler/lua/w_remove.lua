local id = ARGV[3]
if redis.call('EXISTS', P..':worker:'..id) == 1 then
  forgetIdle(id)
  setPlatformLive(id, nil)
end
redis.call('ZREM', BEATS, id)
redis.call('DEL', P..':worker:'..id)
return 1
