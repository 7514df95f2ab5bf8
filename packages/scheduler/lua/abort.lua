-- Fails or cancels a build. ARGV[4..6]: build id, status, error. Declared by the caller: the
-- build's hash, stage list and events; asked for: its stages and what cancelling them touches
-- (see planAbort). Returns {n, builds, jobs}.
local bid = ARGV[4]
planAbort(bid)
if #NEED > 0 then return asked() end
local out = { builds = {}, jobs = {} }
abortBuild(bid, ARGV[5], ARGV[6], out)
return {#out.builds, out.builds, out.jobs}
