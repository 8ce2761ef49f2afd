-- versioned: store one version of a product, only if it is newer than the stored one.
--
-- KEYS[1]  the product's versioned copy   <prefix>:{product:<id>}:current
-- KEYS[2]  the product's fill lease       <prefix>:{product:<id>}:lease
-- ARGV[1]  the version, as Postgres committed it
-- ARGV[2]  the copy: '<version>\n' followed by the product JSON (nothing after it for a deletion)
-- ARGV[3]  safety TTL in seconds
-- ARGV[4]  '' for a write-through publish; the lease token for a fill after a miss
--
-- Returns 1 when this version is stored, 0 when it was refused.
local version = tonumber(ARGV[1])
local fill_lease = ARGV[4]

-- A fill read Postgres some time ago. If a publish happened since (it ended the lease), or
-- Redis lost its data (FLUSHALL, restart, eviction took the lease), what it read may be older
-- than a version that was already acknowledged: refuse it.
if fill_lease ~= '' and redis.call('GET', KEYS[2]) ~= fill_lease then
  return 0
end

local current = redis.call('GET', KEYS[1])
if current then
  local stored = tonumber(string.match(current, '^(%d+)\n'))
  if stored and stored > version then
    -- Writers finish in any order; the newer version stays.
    return 0
  end
end

-- The copy replaces the older one in place: nothing is left behind to expire.
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if fill_lease == '' then
  -- Every fill that read Postgres before this write is now refused.
  redis.call('DEL', KEYS[2])
end
return 1
