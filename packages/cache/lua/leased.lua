-- Drops expired leases, then returns every digest still leased. KEYS[1] is the expiry set,
-- KEYS[1 + i] the digest set of build ARGV[1 + i]: the caller read the ids first, so every key
-- is declared (Redis Cluster). Returns nil when the ids changed meanwhile: read them again.
local now = tonumber(ARGV[1])
local current = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
if #current / 2 ~= #ARGV - 1 then return false end
local expiry = {}
for i = 1, #current, 2 do expiry[current[i]] = tonumber(current[i + 1]) end
local out = {}
local seen = {}
for i = 2, #ARGV do
  local id, setKey = ARGV[i], KEYS[i]
  local at = expiry[id]
  if at == nil then return false end
  if at <= now then
    redis.call('DEL', setKey)
    redis.call('ZREM', KEYS[1], id)
  else
    for _, d in ipairs(redis.call('SMEMBERS', setKey)) do
      if not seen[d] then seen[d] = true; table.insert(out, d) end
    end
  end
end
return out
