-- versioned: read one product in one round trip.
--
-- KEYS[1]  the product's version pointer   <prefix>:{product:<id>}:ver
-- KEYS[2]  the product's fill lease        <prefix>:{product:<id>}:lease
-- ARGV[1]  prefix of the product's payload keys; the version number is appended
-- ARGV[2]  a fresh lease token, used only if this read misses and no lease is held
-- ARGV[3]  lease TTL in milliseconds
--
-- Hit:  {version, payload, nil}
-- Miss: {version or nil, nil, lease}  (the caller reads Postgres, then fills with the lease)
--
-- The payload key is built from the pointer's value, so it cannot be passed in KEYS; it shares
-- the pointer's hash tag, hence its cluster slot.
local version = redis.call('GET', KEYS[1])
if version then
  local payload = redis.call('GET', ARGV[1] .. version)
  if payload then
    return {version, payload, false}
  end
end
-- Concurrent misses share one lease: any of them may fill, until a publish ends the lease.
local lease = redis.call('GET', KEYS[2])
if not lease then
  lease = ARGV[2]
  redis.call('SET', KEYS[2], lease, 'PX', ARGV[3])
end
return {version, false, lease}
