-- Gives back stages whose dispatch pass died between claim and queue. A pass's stages stay in
-- KEYS[7] (the claimed set) from claim until their jobs were added; one whose claimer's lease
-- (P:claimer:<id>, renewed by each claim and mark) expired goes back to ready with its tenant
-- slot freed, unless it is queued and its BullMQ job exists (the pass died after adding it).
-- A re-claim bumps `dispatches`, so the new job id differs and start.lua skips any stale job.
-- KEYS[7] the claimed set; ARGV[3] BullMQ's key prefix (a job is the hash `<bull>:<queue>:<id>`).
-- The stages, leases, ready sets and job hashes are read from the set: built from the prefix.
local bull = ARGV[3]
local n = 0
for _, ref in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  local v = redis.call('HMGET', skey(ref), 'state', 'claimer', 'queue', 'jobId')
  local s = v[1]
  if s ~= 'dispatching' and s ~= 'queued' then
    redis.call('SREM', KEYS[7], ref)
  elseif redis.call('EXISTS', P..':claimer:'..(v[2] or '')) == 0 then
    redis.call('SREM', KEYS[7], ref)
    if s == 'dispatching' or redis.call('EXISTS', bull..':'..(v[3] or '')..':'..(v[4] or '')) == 0 then
      release(ref)
      makeReady(ref)
      n = n + 1
    end
  end
end
return n
