-- Live workers (heartbeat not expired): {id, expiry, {hash fields...}} each; ARGV[3..] limits to those ids.
local now = nowMs()
local ids = {}
if #ARGV >= 3 then
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGEBYSCORE', BEATS, '('..now, '+inf')
end
local out = {}
for _, id in ipairs(ids) do
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > now then
    local h = redis.call('HGETALL', P..':worker:'..id)
    if #h > 0 then out[#out + 1] = {id, exp, h} end
  end
end
return out
