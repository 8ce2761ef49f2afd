-- versioned: take the fill lease of a product after a miss, before reading Postgres.
--
-- KEYS[1]  the product's fill lease   <prefix>:{product:<id>}:lease
-- ARGV[1]  a fresh token, used if no lease is held
-- ARGV[2]  lease TTL in milliseconds
--
-- Returns the lease token to fill with. Concurrent misses share one lease: any of them may
-- fill, until a publish (or a loss of Redis data) ends it.
local lease = redis.call('GET', KEYS[1])
if not lease then
  lease = ARGV[1]
  redis.call('SET', KEYS[1], lease, 'PX', ARGV[2])
end
return lease
