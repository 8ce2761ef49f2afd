-- versioned: publish a committed version of a product (write-through, outbox relay).
--
-- KEYS[1]  the product's versioned copy   <prefix>:{product:<id>}:current
-- KEYS[2]  the product's fill lease       <prefix>:{product:<id>}:lease
-- ARGV[1]  the version, as Postgres committed it
-- ARGV[2]  the copy: '<version>\n' followed by the product JSON (nothing after it for a deletion)
-- ARGV[3]  safety TTL in seconds
-- ARGV[4]  '' without replicas; with replicas, a token no fill holds (see below)
-- ARGV[5]  '' without the near cache; with it, the Redis time (ms) by which this publish must
--          land: the instances told to drop the older copy keep refusing it until then
--          (`near.rs`)
--
-- Returns 1 when the copy was replaced, 0 when the stored copy is as new or newer, 2 when no copy
-- is stored (nothing is written), 3 when too late (nothing is done: tell the instances again).
--
-- The rule this keeps: once version n was acknowledged, the stored copy is missing or at least n.
-- A publisher read its row some time ago (it may have stalled since), so what it carries may be
-- older than a version acknowledged meanwhile. Over a stored copy, comparing versions is enough:
-- the newer stays. Over an empty key it is not: the newer copy may have been lost (FLUSHALL,
-- eviction, restart, expiry) after its acknowledgement, and writing here would bring the older
-- version back. So a missing copy stays missing, and the next read fills it under a lease.

if ARGV[5] ~= '' then
  local time = redis.call('TIME')
  if tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000) > tonumber(ARGV[5]) then
    return 3
  end
end

-- Every fill that read Postgres before this write is refused from now on: the lease ends. With
-- replicas it is replaced by a fresh token instead of deleted (a miss that takes it now reads
-- Postgres after this publish, which is safe): a write the primary always replicates, so that
-- the WAIT after this publish covers everything the primary did before it, even when this
-- publish stores nothing.
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4], 'PX', 1000)
else
  redis.call('DEL', KEYS[2])
end

local current = redis.call('GET', KEYS[1])
if not current then
  return 2
end
local stored = tonumber(string.match(current, '^(%d+)\n'))
if stored and stored >= tonumber(ARGV[1]) then
  -- Writers finish in any order; the newer version stays.
  return 0
end
-- The copy replaces the older one in place: nothing is left behind to expire.
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
