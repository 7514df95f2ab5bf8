-- Live workers (heartbeat not expired): {id, expiry, {hash fields...}} each. ARGV[4..] limits to
-- those ids (their hashes, w:<id>, declared); without ids, every live worker (their hashes asked
-- for: their ids are known only from BEATS).
local now = nowMs()
local ids = {}
if #ARGV >= 4 then
  for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGEBYSCORE', BEATS, '('..now, '+inf')
end
local hashes = {}
for i, id in ipairs(ids) do hashes[i] = key('w:'..id) end
if #NEED > 0 then return asked() end
local out = {}
for i, id in ipairs(ids) do
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > now then
    local h = redis.call('HGETALL', hashes[i])
    if #h > 0 then out[#out + 1] = {id, exp, h} end
  end
end
return out
