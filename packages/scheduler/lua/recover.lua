-- Gives back stages whose dispatch pass died between claim and queue. A pass's stages stay in
-- CLAIMED from claim until their jobs were added; one whose claimer's lease (lease:<id>, renewed
-- by each claim and mark) expired goes back to ready with its tenant slot freed, unless it is
-- queued and its BullMQ job exists (the pass died after adding it). A re-claim bumps
-- `dispatches`, so the new job id differs and start.lua skips any stale job.
-- Asked for: the watched stages' hashes, their claimers' leases, their jobs' hashes
-- (job:<queue>:<id>) and their tenants' ready sets. Returns how many went back to ready.
local drop, back = {}, {}
for _, ref in ipairs(redis.call('SMEMBERS', CLAIMED)) do
  local sk = key('s:'..ref)
  if sk then
    local v = redis.call('HMGET', sk, 'state', 'claimer', 'queue', 'jobId', 'tenant')
    local s = v[1]
    if s ~= 'dispatching' and s ~= 'queued' then
      drop[#drop + 1] = ref
    else
      local lk = key('lease:'..(v[2] or ''))
      if lk and redis.call('EXISTS', lk) == 0 then
        local gone = s == 'dispatching'
        local known = gone
        if not gone then
          local jk = key('job:'..(v[3] or '')..':'..(v[4] or ''))
          known = jk ~= nil
          gone = known and redis.call('EXISTS', jk) == 0
        end
        if known then drop[#drop + 1] = ref end
        if gone then
          key('tr:'..(v[5] or ''))
          back[#back + 1] = {ref, sk}
        end
      end
    end
  end
end
if #NEED > 0 then return asked() end
for _, ref in ipairs(drop) do redis.call('SREM', CLAIMED, ref) end
for _, b in ipairs(back) do
  release(b[2])
  makeReady(b[1], b[2])
end
return #back
