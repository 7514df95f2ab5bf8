-- Wakes as many idle consumers of each queue as jobs were added to it: ARGV[4..] = queue, count
-- pairs; KEYS[11..] the queues' idle sets, in the same order. (Wake channels are not keys.)
local woken = 0
for i = 4, #ARGV - 1, 2 do
  local q, n = ARGV[i], tonumber(ARGV[i + 1])
  if n > 0 then
    for _, id in ipairs(redis.call('SPOP', KEYS[NFIXED + 1 + (i - 4) / 2], n)) do
      redis.call('PUBLISH', P..':wake:'..id, q)
      woken = woken + 1
    end
  end
end
return woken
