-- Deletes cache records: KEYS[1] the tenant's LRU set, KEYS[2] the blob reference counts,
-- KEYS[2 + i] the record of cache key ARGV[i] (every key is declared, for Redis Cluster).
-- Returns the digests whose last reference went away.
local freed = {}
for i = 1, #ARGV do
  local recKey = KEYS[2 + i]
  local raw = redis.call('GET', recKey)
  if raw then
    redis.call('DEL', recKey)
    redis.call('ZREM', KEYS[1], ARGV[i])
    local rec = cjson.decode(raw)
    if type(rec.layer) == 'table' then
      local left = redis.call('HINCRBY', KEYS[2], rec.layer.digest, -1)
      if left <= 0 then
        redis.call('HDEL', KEYS[2], rec.layer.digest)
        table.insert(freed, rec.layer.digest)
      end
    end
  end
end
return freed
