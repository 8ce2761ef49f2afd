-- versioned: the newest database history any instance of the deployment has seen.
--
-- KEYS[1]  <prefix>:history
-- ARGV[1]  the newest history this instance knows
--
-- Returns the newest of the two, after storing it. The key only ever goes up; lost (a flush, a
-- failover of Redis), it is raised again by the next instance that looks.
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local mine = tonumber(ARGV[1])
if mine > stored then
  redis.call('SET', KEYS[1], ARGV[1])
  return mine
end
return stored
