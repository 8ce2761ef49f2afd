-- Tells every instance whose near-cache lease may still run to drop a product's copy.
--
-- KEYS[1]: the registry (see near_renew.lua)
-- ARGV[1]: the writing instance (not told: it dropped its own copy already)
-- ARGV[2]: the channels' common prefix (`<prefix>:near:`); ARGV[3]: the message
-- Answers {now, created, instance, lease end, ...} in Redis's milliseconds: the instances told,
-- with when their leases end; created is -1 when there is no registry (it was lost: every
-- lease granted before the loss may still run), else when the registry was made (an instance
-- leased before then is not listed and may still hold copies until created + the lease length).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local entries = redis.call('HGETALL', KEYS[1])
if #entries == 0 then
  return {now, -1}
end
local told = {now, 0}
for i = 1, #entries, 2 do
  local field, value = entries[i], tonumber(entries[i + 1])
  if field == '_created' then
    told[2] = value
  elseif value > now and field ~= ARGV[1] then
    redis.call('PUBLISH', ARGV[2] .. field, ARGV[3])
    table.insert(told, field)
    table.insert(told, value)
  end
end
return told
