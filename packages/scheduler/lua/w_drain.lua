-- Sets a worker's drain flag (ARGV[4] 1/0) and tells it at once on its wake channel; a draining
-- worker leaves its platforms' live sets and the idle sets, so it is neither placed on nor woken.
local id, on = ARGV[3], ARGV[4]
local wk = P..':worker:'..id
if redis.call('EXISTS', wk) == 0 then return 0 end
redis.call('HSET', wk, 'draining', on)
if on == '1' then
  setPlatformLive(id, nil)
  forgetIdle(id)
  redis.call('PUBLISH', P..':wake:'..id, 'drain')
else
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > nowMs() then setPlatformLive(id, tonumber(exp)) end
  redis.call('PUBLISH', P..':wake:'..id, 'undrain')
end
return 1
