-- Marks a record used; the JSON keeps the counters so a record reads back whole.
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local rec = cjson.decode(raw)
rec.lastUsedMs = tonumber(ARGV[1])
rec.usageCount = (rec.usageCount or 0) + 1
local updated = cjson.encode(rec)
redis.call('SET', KEYS[1], updated)
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return updated
