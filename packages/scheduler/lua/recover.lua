-- Gives back stages whose dispatch pass died before their jobs were added. A pass's stages stay
-- in CLAIMED (ref -> claimer) from claim (or, re-homing, from before their old jobs are
-- removed) until their jobs were added; one whose claimer's lease (lease:<id>, renewed by each
-- claim, mark and watch) expired goes back to ready with its tenant slot freed, unless its
-- BullMQ job exists (the pass died after adding it, or before removing the old one).
-- A re-claim bumps `dispatches`, so the new job id differs and start.lua skips any stale job.
-- Asked for: the claimers' leases, then the hashes of the stages of dead claimers, their jobs'
-- hashes (job:<queue>:<id>) and their tenants' ready sets. Returns how many went back to ready.
local drop, back = {}, {}
local claims = redis.call('HGETALL', CLAIMED)
for i = 1, #claims, 2 do
  local ref, claimer = claims[i], claims[i + 1]
  local lk = key('lease:'..claimer)
  if lk and redis.call('EXISTS', lk) == 0 then
    local sk = key('s:'..ref)
    if sk then
      local v = redis.call('HMGET', sk, 'state', 'queue', 'jobId', 'tenant')
      local s = v[1]
      if s == 'ready' then
        -- claimed, never queued
        key('tr:'..v[4])
        back[#back + 1] = {ref, sk, v[4], true}
      elseif s == 'queued' or s == 'running' then
        local jk = key('job:'..(v[2] or '')..':'..(v[3] or ''))
        if jk then
          if redis.call('EXISTS', jk) == 0 then
            key('tr:'..v[4])
            back[#back + 1] = {ref, sk, v[4], false}
          else
            drop[#drop + 1] = ref
          end
        end
      else
        drop[#drop + 1] = ref
      end
    end
  end
end
if #NEED > 0 then return asked() end
for _, ref in ipairs(drop) do redis.call('HDEL', CLAIMED, ref) end
for _, b in ipairs(back) do
  if b[4] then dropClaim(b[1], b[3]) else
    redis.call('HDEL', CLAIMED, b[1])
    release(b[2])
  end
  makeReady(b[1], b[2])
end
return #back
