-- What placement needs, in one round trip: per platform the number of live, not draining native
-- and emulating workers; per input-holding worker its hash and the jobs waiting on its own queue.
-- ARGV[4] = JSON {platforms = [...], holders = [...]}; returns JSON. KEYS[11..]: per platform its
-- native and emulated live sets, then per holder its hash and its own queue's wait list and
-- prioritized set (WorkerRegistry.placementView, in this order).
local req = cjson.decode(ARGV[4])
local now = nowMs()
local platforms, holders = {}, {}
local k = NFIXED + 1
for _, p in ipairs(req.platforms) do
  platforms[p] = {
    native = redis.call('ZCOUNT', KEYS[k], '('..now, '+inf'),
    emulated = redis.call('ZCOUNT', KEYS[k + 1], '('..now, '+inf'),
  }
  k = k + 2
end
for _, id in ipairs(req.holders) do
  local wk, wait, prioritized = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  k = k + 3
  local exp = redis.call('ZSCORE', BEATS, id)
  if exp and tonumber(exp) > now then
    local v = redis.call('HMGET', wk, 'capacity', 'running', 'draining', 'nativePlatforms', 'emulatedPlatforms')
    if v[1] then
      holders[id] = {
        capacity = tonumber(v[1]), running = tonumber(v[2] or '0'), draining = v[3] == '1',
        nativePlatforms = v[4] or '[]', emulatedPlatforms = v[5] or '[]',
        queued = redis.call('LLEN', wait) + redis.call('ZCARD', prioritized),
      }
    end
  end
end
return cjson.encode({platforms = platforms, holders = holders})
