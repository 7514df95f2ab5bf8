-- Stores a build and its stages; those without dependencies become ready. KEYS[7] the build's
-- hash, KEYS[8] its stage list, KEYS[9] its event stream, KEYS[10] the tenant's ready set,
-- KEYS[11..] the stages' hashes in the order of ARGV[7].
local bid, tenant, prio, trace = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local stages = cjson.decode(ARGV[7])
local bk = KEYS[7]
if redis.call('EXISTS', bk) == 1 then return redis.error_reply('build '..bid..' already exists') end
redis.call('HSET', bk, 'tenant', tenant, 'prio', prio, 'state', 'running', 'createdAt', ARGV[2],
  'total', #stages, 'done', 0, 'trace', trace)
local dependents = {}
for _, s in ipairs(stages) do
  for _, d in ipairs(s.deps) do
    dependents[d] = dependents[d] or {}
    table.insert(dependents[d], s.ref)
  end
end
for i, s in ipairs(stages) do
  redis.call('RPUSH', KEYS[8], s.ref)
  redis.call('HSET', KEYS[10 + i], 'build', bid, 'platform', s.platform, 'runPlatform', s.runPlatform, 'stage', s.stage, 'tenant', tenant,
    'prio', prio, 'cacheKey', s.cacheKey, 'payload', s.payload, 'deps', table.concat(s.deps, '\n'),
    'dependents', table.concat(dependents[s.ref] or {}, '\n'), 'pending', #s.deps, 'state', 'pending',
    'counted', '0', 'dispatches', 0, 'attempts', 0)
end
for i, s in ipairs(stages) do
  if #s.deps == 0 then makeReady(s.ref, KEYS[10 + i], KEYS[10]) end
end
if #stages == 0 then
  redis.call('HSET', bk, 'state', 'done', 'finishedAt', ARGV[2])
  redis.call('XADD', KEYS[9], '*', 'type', 'build-done')
end
return 1
