-- Fails or cancels a build. KEYS[7] the build's hash; its stages (from its stage list) and their
-- tenants' and followers' keys are reached at run time (see prelude.lua).
local out = { builds = {}, jobs = {} }
abortBuild(ARGV[3], ARGV[4], ARGV[5], out)
return {#out.builds, out.builds, out.jobs}
