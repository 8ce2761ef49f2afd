-- One request of a client against its allowance: GCRA, the generic cell rate algorithm, as
-- `rate_limit::gcra` does it in memory (the two must agree; see there).
-- KEYS[1]: the client's theoretical arrival time, ms by Redis's clock (one key per client:
--          Redis Cluster places it anywhere).
-- ARGV[1]: the emission interval, ms per request; ARGV[2]: the burst, requests at once.
-- Returns {allowed (1 or 0), requests left now, ms until the allowance is whole again,
--          ms to wait before the next request is allowed (0 when this one was)}.
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local window = interval * burst
local next_tat = tat + interval
if next_tat - now > window then
  return {0, 0, tat - now, next_tat - now - window}
end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return {1, math.floor((window - (next_tat - now)) / interval), next_tat - now, 0}
