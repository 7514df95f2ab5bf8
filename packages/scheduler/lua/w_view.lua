-- What placement needs, in one round trip: per platform the number of live, not draining native
-- and emulating workers; per input-holding worker its hash and the jobs waiting on its own queue.
-- ARGV[3] = JSON {platforms = [...], holders = [...]}; returns JSON.
local req = cjson.decode(ARGV[3])
local now = nowMs()
local platforms, holders = {}, {}
for _, p in ipairs(req.platforms) do
  platforms[p] = {
    native = redis.call('ZCOUNT', P..':platform:'..p..':native', '('..now, '+inf'),
    emulated = redis.call('ZCOUNT', P..':platform:'..p..':emulated', '('..now, '+inf'),
  }
end
for _, id in ipairs(req.holders) do
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > now then
    local v = redis.call('HMGET', P..':worker:'..id, 'capacity', 'running', 'draining', 'nativePlatforms', 'emulatedPlatforms')
    if v[1] then
      local q = P..':bull:'..workerQueue(id)
      holders[id] = {
        capacity = tonumber(v[1]), running = tonumber(v[2] or '0'), draining = v[3] == '1',
        nativePlatforms = v[4] or '[]', emulatedPlatforms = v[5] or '[]',
        queued = redis.call('LLEN', q..':wait') + redis.call('ZCARD', q..':prioritized'),
      }
    end
  end
end
return cjson.encode({platforms = platforms, holders = holders})
