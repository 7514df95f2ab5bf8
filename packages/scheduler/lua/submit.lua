-- Stores a build and its stages; those without dependencies become ready. ARGV[4..8]: build id,
-- tenant, priority, trace context (JSON), stages (JSON). Declared: the build's hash (b:), stage
-- list (bs:) and events (be:), the tenant's ready set (tr:) and every stage's hash (s:). Each
-- stage keeps a copy of the trace context: a dispatcher reads what it places from the stage alone.
local bid, tenant, prio, trace = ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local stages = cjson.decode(ARGV[8])
local bk = must('b:'..bid)
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
local ls = must('bs:'..bid)
for _, s in ipairs(stages) do
  redis.call('RPUSH', ls, s.ref)
  redis.call('HSET', must('s:'..s.ref), 'build', bid, 'platform', s.platform, 'runPlatform', s.runPlatform, 'stage', s.stage, 'tenant', tenant,
    'prio', prio, 'cacheKey', s.cacheKey, 'payload', s.payload, 'deps', table.concat(s.deps, '\n'),
    'dependents', table.concat(dependents[s.ref] or {}, '\n'), 'pending', #s.deps, 'state', 'pending',
    'counted', '0', 'dispatches', 0, 'attempts', 0, 'trace', trace)
end
for _, s in ipairs(stages) do
  if #s.deps == 0 then makeReady(s.ref, must('s:'..s.ref)) end
end
if #stages == 0 then
  redis.call('HSET', bk, 'state', 'done', 'finishedAt', ARGV[2])
  emit(bid, {'type', 'build-done'})
end
return 1
