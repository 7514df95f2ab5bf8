-- Live workers (heartbeat not expired): {id, expiry, {hash fields...}} each; ARGV[3..] limits to
-- those ids, whose hashes are KEYS[7..]. Without ids, every live worker: their ids (and so their
-- hashes' names) are known only from BEATS.
local now = nowMs()
local ids, hashes = {}, {}
if #ARGV >= 3 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i]; hashes[#hashes + 1] = KEYS[4 + i] end
else
  ids = redis.call('ZRANGEBYSCORE', BEATS, '('..now, '+inf')
  for i, id in ipairs(ids) do hashes[i] = P..':worker:'..id end
end
local out = {}
for i, id in ipairs(ids) do
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > now then
    local h = redis.call('HGETALL', hashes[i])
    if #h > 0 then out[#out + 1] = {id, exp, h} end
  end
end
return out
