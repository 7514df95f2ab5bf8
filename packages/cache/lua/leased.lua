-- Drops expired leases, then returns every digest still leased.
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(expired) do redis.call('DEL', ARGV[2] .. id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
local seen = {}
for _, id in ipairs(ids) do
  for _, d in ipairs(redis.call('SMEMBERS', ARGV[2] .. id)) do
    if not seen[d] then seen[d] = true; table.insert(out, d) end
  end
end
return out
