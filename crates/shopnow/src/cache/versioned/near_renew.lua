-- Renews one instance's near-cache lease in the registry and sends the instance a tick through
-- its own channel: the instance counts the lease only when the tick arrives, so a lease is
-- never longer than the subscription that carries invalidations is known to work.
--
-- KEYS[1]: the registry (`<prefix>:near:instances`, field = instance, value = lease end in
--          Redis's milliseconds; `_created` = when the registry was made)
-- ARGV[1]: the instance; ARGV[2]: lease length (ms); ARGV[3]: the instance's channel;
-- ARGV[4]: the renewal's sequence number; ARGV[5]: "1" to also forget instances whose lease
--          ended more than a minute ago
-- Answers 1 if the instance's lease ran on without a gap, 0 if not: it had run out (a pause, a
-- slow renewal), the registry lost it, or this is the first renewal. Writers skip an instance
-- whose lease ran out, so after a gap it may hold copies nobody told it to drop: the tick says
-- the same, and the instance then drops every copy it holds before it serves again.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], '_created', now)
end
local previous = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
local continuous = 0
if previous and previous > now then
  continuous = 1
end
redis.call('HSET', KEYS[1], ARGV[1], now + tonumber(ARGV[2]))
if ARGV[5] == '1' then
  local entries = redis.call('HGETALL', KEYS[1])
  for i = 1, #entries, 2 do
    if entries[i] ~= '_created' and tonumber(entries[i + 1]) < now - 60000 then
      redis.call('HDEL', KEYS[1], entries[i])
    end
  end
end
redis.call('PUBLISH', ARGV[3], 't ' .. ARGV[4] .. ' ' .. continuous)
return continuous
