-- Takes over the coordination of an unfinished build from a frontend that is gone: only when
-- the record still names that frontend, so of several frontends sweeping at once one wins.
-- KEYS[1] the build's record (hash); ARGV[1] the coordinator that is gone; ARGV[2] the claimant.
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'coordinator') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'coordinator', ARGV[2])
return 1
