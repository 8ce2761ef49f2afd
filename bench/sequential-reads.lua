-- Reads every product id 1..PRODUCTS in order, split between wrk's THREADS threads (to fill the
-- cache with every product); past the end it starts again.
-- wrk -tTHREADS -s bench/sequential-reads.lua URL -- PRODUCTS THREADS
local products, step, next_id = 10000, 1, 1
local created = 0
function setup(thread)
  thread:set("offset", created)
  created = created + 1
end
function init(args)
  products = tonumber(args[1] or products)
  step = tonumber(args[2] or 1)
  next_id = 1 + offset
end
function request()
  local id = next_id
  next_id = next_id + step
  if next_id > products then next_id = 1 + offset end
  return wrk.format("GET", "/v1/products/" .. id)
end
