-- Reads of product ids that do not exist: FIRST..FIRST+COUNT-1, at random (ids above every
-- product's). wrk -s bench/missing-reads.lua URL -- FIRST COUNT
local first, count = 10000001, 1000
function init(args)
  first = tonumber(args[1] or first)
  count = tonumber(args[2] or count)
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  return wrk.format("GET", "/v1/products/" .. math.random(first, first + count - 1))
end
