-- Moves ready stages into dispatch while their tenant is under its limit. A stage whose cache
-- key is already in flight becomes a follower of that leader instead (SET NX marker).
local defaultLimit = tonumber(redis.call('HGET', P..':config', 'tenantLimit') or ARGV[3])
local maxClaims = tonumber(ARGV[4])
local out = {}
for _, t in ipairs(redis.call('SMEMBERS', P..':tenants')) do
  local rk = P..':tenant:'..t..':ready'
  local ak = P..':tenant:'..t..':active'
  local limit = tonumber(redis.call('GET', P..':tenant:'..t..':limit') or defaultLimit)
  while #out < maxClaims do
    if limit > 0 and tonumber(redis.call('GET', ak) or '0') >= limit then break end
    local top = redis.call('ZPOPMIN', rk)
    if #top == 0 then redis.call('SREM', P..':tenants', t) break end
    local ref = top[1]
    local sk = skey(ref)
    if redis.call('HGET', sk, 'state') == 'ready' then
      local ck = redis.call('HGET', sk, 'cacheKey')
      local leader = nil
      if ck ~= '' then
        local ik = P..':inflight:'..ck
        if not redis.call('SET', ik, ref, 'NX') then leader = redis.call('GET', ik) end
      end
      if leader and leader ~= ref then
        redis.call('HSET', sk, 'state', 'deduped', 'leader', leader)
        redis.call('RPUSH', P..':inflight:'..ck..':followers', ref)
        local b, p, s = stageFields(ref)
        emit(b, {'type', 'stage-deduped', 'platform', p, 'stage', s, 'leader', leader})
      else
        redis.call('HSET', sk, 'state', 'dispatching', 'counted', '1')
        redis.call('INCR', ak)
        redis.call('HINCRBY', sk, 'dispatches', 1)
        out[#out + 1] = ref
      end
    end
  end
end
return out
