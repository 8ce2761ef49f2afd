-- versioned: store one version of a product and raise the pointer to it, never lower it.
--
-- KEYS[1]  the product's version pointer
-- KEYS[2]  the payload key of this version
-- KEYS[3]  the product's fill lease
-- ARGV[1]  the version, as Postgres committed it
-- ARGV[2]  the payload (product JSON, or '' for a deletion)
-- ARGV[3]  safety TTL in seconds, set on every key written
-- ARGV[4]  prefix of the product's payload keys
-- ARGV[5]  '' for a write-through publish; the lease token for a fill after a miss
--
-- Returns 1 when this version is stored, 0 when it was refused.
local version = tonumber(ARGV[1])
local fill_lease = ARGV[5]

-- A fill read Postgres some time ago. If a publish happened since (it ended the lease), or
-- Redis lost its data (FLUSHALL, restart, eviction took the lease), what it read may be older
-- than a version that was already acknowledged: refuse it.
if fill_lease ~= '' and redis.call('GET', KEYS[3]) ~= fill_lease then
  return 0
end

local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current > version then
  -- Writers finish in any order; the newer version stays.
  return 0
end

redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
if current < version then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  if current > 0 then
    -- The replaced payload can never be read again; free it now rather than at its TTL.
    redis.call('DEL', ARGV[4] .. current)
  end
end
if fill_lease == '' then
  -- Every fill that read Postgres before this write is now refused.
  redis.call('DEL', KEYS[3])
end
return 1
