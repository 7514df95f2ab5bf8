-- Ends one stage's write scope (blobWrites.ts). KEYS[1] is the expiry set, KEYS[2] the build's
-- digest set, KEYS[3] the scope's digest set, KEYS[4] the build's "ended" mark; ARGV[1] is the
-- build id, ARGV[2] the scope's holder. While the build runs, the scope's digests join the
-- build's lease (released when the build ends); once it has ended they are dropped at once.
local scopeExpiry = redis.call('ZSCORE', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[4]) == 1 or not scopeExpiry then
  redis.call('DEL', KEYS[3])
  return 0
end
redis.call('SUNIONSTORE', KEYS[2], KEYS[2], KEYS[3])
redis.call('DEL', KEYS[3])
redis.call('ZADD', KEYS[1], 'GT', scopeExpiry, ARGV[1])
redis.call('PEXPIREAT', KEYS[2], redis.call('ZSCORE', KEYS[1], ARGV[1]))
return 1
