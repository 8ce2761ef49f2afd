-- versioned: store what a miss read from Postgres, under the lease it took before reading.
--
-- KEYS[1]  the product's versioned copy   <prefix>:{product:<id>}:current
-- KEYS[2]  the product's fill lease       <prefix>:{product:<id>}:lease
-- ARGV[1]  the version read from Postgres
-- ARGV[2]  the copy: '<version>\n' followed by the product JSON (nothing after it for a deletion)
-- ARGV[3]  safety TTL in seconds
-- ARGV[4]  the lease token `lease.lua` gave this miss
-- ARGV[5]  '' without the near cache; with it, the Redis time (ms) by which this fill must land
--          (`near.rs`: the instances told of it before it stop refusing older copies after)
--
-- Returns 1 when the copy was stored, 0 when it was refused.

-- The lease still holding means no publish happened since this miss took it, and Redis lost
-- nothing since (a FLUSHALL, restart or eviction takes the lease with it): what the miss read
-- after taking the lease is at least every version acknowledged so far.
if redis.call('GET', KEYS[2]) ~= ARGV[4] then
  return 0
end
if ARGV[5] ~= '' then
  local time = redis.call('TIME')
  if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > tonumber(ARGV[5]) then
    return 0
  end
end

local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(string.match(current, '^(%d+)\n'))
  if stored and stored > tonumber(ARGV[1]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
-- Done: the next miss takes a lease of its own, and no lease key is left behind.
redis.call('DEL', KEYS[2])
return 1
