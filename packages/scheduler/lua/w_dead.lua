-- Registered workers whose heartbeat expired.
return redis.call('ZRANGEBYSCORE', BEATS, '-inf', nowMs())
