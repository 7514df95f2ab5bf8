-- Returns the digests whose last reference went away.
local freed = {}
for i = 1, #ARGV do
  local recKey = KEYS[1] .. ARGV[i]
  local raw = redis.call('GET', recKey)
  if raw then
    redis.call('DEL', recKey)
    redis.call('ZREM', KEYS[2], ARGV[i])
    local rec = cjson.decode(raw)
    if type(rec.layer) == 'table' then
      local left = redis.call('HINCRBY', KEYS[3], rec.layer.digest, -1)
      if left <= 0 then
        redis.call('HDEL', KEYS[3], rec.layer.digest)
        table.insert(freed, rec.layer.digest)
      end
    end
  end
end
return freed
