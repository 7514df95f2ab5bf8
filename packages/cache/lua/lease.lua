-- Adds digests to a build's lease and pushes its expiry out, atomically.
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local setKey = KEYS[2]
for i = 3, #ARGV do redis.call('SADD', setKey, ARGV[i]) end
redis.call('PEXPIREAT', setKey, ARGV[1])
return 1
